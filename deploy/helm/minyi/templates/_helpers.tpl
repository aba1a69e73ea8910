{{/* Labels of everything the chart makes. */}}
{{- define "minyi.labels" -}}
app.kubernetes.io/part-of: minyi
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{/* Selector labels of one service's pods; call with (dict "root" $ "name" "intake"). */}}
{{- define "minyi.selector" -}}
app.kubernetes.io/name: minyi-{{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end }}

{{- define "minyi.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end }}

{{/* Pod security: non-root, no privilege escalation, no capabilities, read-only root. */}}
{{- define "minyi.podSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "minyi.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end }}

{{/* What every Minyi process reads besides the ConfigMap and its own Secret (envFrom, by
reference): the store's URI. */}}
{{- define "minyi.env" -}}
# Written by the MongoDB operator: <resource>-<database>-<user>, the replica set's URI.
- name: MINYI_MONGO_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.store.name }}-admin-{{ .Values.store.user }}
      key: connectionString.standard
{{- end }}
