{{/* Standard names (as `helm create` and the prometheus-community charts spell them). */}}
{{- define "fraudops-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "fraudops-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "fraudops-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fraudops-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "fraudops-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "fraudops-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fraudops
app.kubernetes.io/component: operator
{{- end }}

{{- define "fraudops-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fraudops-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "fraudops-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The calls the operator makes in a namespace it reconciles, and nothing else (tests/k8s/test_chart_rbac.py
checks each against the API server and the audit log of a real run). Server-side apply is a PATCH, and
one that creates the object is also authorised as `create`.
*/}}
{{- define "fraudops-operator.namespacedRules" -}}
# Kopf watches FraudModels and TrainingRuns, adds its finalizer (patch); the handlers read them fresh,
# write status (PUT) and hand a trained artifact to a FraudModel (merge patch).
- apiGroups: [fraudops.io]
  resources: [fraudmodels, trainingruns]
  verbs: [get, list, watch, patch]
- apiGroups: [fraudops.io]
  resources: [fraudmodels/status, trainingruns/status]
  verbs: [update, patch]
# Rollout and training Events.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# Children, by server-side apply: routing table, consumer, its autoscaler (and the autoscaler's broker
# login, which names a Secret but never reads it), its topic, training Job.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [create, patch]
# The consumer and the entity-state component; the latter's readiness is read every tick while it runs, and
# it is listed and deleted once no routed version needs it.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, create, patch, delete]
- apiGroups: [keda.sh]
  resources: [scaledobjects]
  verbs: [create, patch]
# The broker login is listed and deleted once spec.stream.authentication is removed.
- apiGroups: [keda.sh]
  resources: [triggerauthentications]
  verbs: [list, create, patch, delete]
- apiGroups: [kafka.strimzi.io]
  resources: [kafkatopics]
  verbs: [create, patch]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, create, patch]
# One InferenceService per served version; the ones no longer served are listed and deleted.
- apiGroups: [serving.kserve.io]
  resources: [inferenceservices]
  verbs: [list, create, patch, delete]
# Checks before acting: the artifact's volume claim exists; a finished Job's pod termination message.
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get]
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
{{- if .Values.peering.enabled }}
{{- if .Values.watchNamespaces }}
# Kopf peering between replicas (one KopfPeering per watched namespace).
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}
{{- end }}
{{- end }}
