{{/* Standard names (as `helm create` and the prometheus-community charts spell them). */}}
{{- define "fraudops.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "fraudops.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Labels of every object; `component` names the part (gateway, postgresql, kafka, ...). */}}
{{- define "fraudops.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{ include "fraudops.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: fraudops
{{- end }}

{{- define "fraudops.selectorLabels" -}}
app.kubernetes.io/name: fraudops-{{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "fraudops.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) }}
{{- end }}

{{/* Where the platform finds Kafka: the override, else the bootstrap Service (Strimzi's, or the bundled
broker's, which has the same name). */}}
{{- define "fraudops.kafkaBootstrap" -}}
{{- if .Values.kafka.bootstrapServers }}
{{- .Values.kafka.bootstrapServers }}
{{- else }}
{{- printf "%s-kafka-bootstrap:9092" .Values.kafka.clusterName }}
{{- end }}
{{- end }}

{{/* Restricted Pod Security Standard: the pod and container halves. */}}
{{- define "fraudops.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "fraudops.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: {{ .Values.readOnlyRootFilesystem }}
capabilities:
  drop: [ALL]
{{- end }}

{{/* The database URL, from the Secret every part reads. */}}
{{- define "fraudops.databaseEnv" -}}
- name: DB_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.secretName }}
      key: {{ .Values.database.secretKey }}
{{- end }}

{{/* OpenTelemetry exporter settings (the standard OTEL_* variables), when an endpoint is set. */}}
{{- define "fraudops.otelEnv" -}}
{{- if .root.Values.observability.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .root.Values.observability.otlpEndpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ .root.Values.observability.otlpProtocol | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ .root.Values.observability.sampler | quote }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .root.Values.observability.samplerRatio | quote }}
- name: OTEL_SERVICE_NAME
  value: fraudops-{{ .component }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: service.namespace={{ .root.Release.Namespace }},service.version={{ .root.Chart.AppVersion }}
{{- end }}
{{- end }}
