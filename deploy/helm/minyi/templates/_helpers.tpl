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

{{/* What every Minyi process reads: the ConfigMap and the two secrets by reference. */}}
{{- define "minyi.env" -}}
- name: MINYI_SECRET
  valueFrom:
    secretKeyRef: {name: {{ .Values.secrets.app }}, key: MINYI_SECRET}
- name: MINYI_SERVICE_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ .Values.secrets.app }}, key: MINYI_SERVICE_PASSWORD}
# Written by the MongoDB operator: <resource>-<database>-<user>, the replica set's URI.
- name: MINYI_MONGO_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.store.name }}-admin-{{ .Values.store.user }}
      key: connectionString.standard
{{- end }}
