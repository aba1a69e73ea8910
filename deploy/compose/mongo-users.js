// MongoDB users of the compose stack, one per service (run once by the mongo image on an empty
// data directory, as the root user). Each may read and write its own database and read the
// API keys in minyi_auth; nothing else. Passwords come from the container's environment.
// The console also writes minyi_auth: each session's key for the services lives there.
for (const service of ["intake", "routing", "followup", "notification", "console"]) {
  const password = process.env[`MINYI_${service.toUpperCase()}_MONGO_PASSWORD`];
  if (!password) throw new Error(`MINYI_${service.toUpperCase()}_MONGO_PASSWORD is not set`);
  db.getSiblingDB("admin").createUser({
    user: service,
    pwd: password,
    roles: [
      { role: "readWrite", db: `minyi_${service}` },
      { role: service === "console" ? "readWrite" : "read", db: "minyi_auth" },
    ],
  });
}
