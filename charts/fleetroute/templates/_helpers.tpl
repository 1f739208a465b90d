{{/* Name of the chart. */}}
{{- define "fleetroute.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of every object name: the release name, with the chart name unless it holds it. */}}
{{- define "fleetroute.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object except the router ConfigMap, whose managed-by the operator sets. */}}
{{- define "fleetroute.labels" -}}
{{ include "fleetroute.baseLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Labels without app.kubernetes.io/managed-by. */}}
{{- define "fleetroute.baseLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "fleetroute.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: fleetroute
{{- with .Values.global.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component; call with (dict "context" $ "component" "operator"). */}}
{{- define "fleetroute.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fleetroute.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The image reference: repository@digest, or repository:tag (default: appVersion). */}}
{{- define "fleetroute.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* Name of the operator's ServiceAccount. */}}
{{- define "fleetroute.operatorServiceAccount" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{ .Values.operator.serviceAccount.name | default (printf "%s-operator" (include "fleetroute.fullname" .)) }}
{{- else -}}
{{ required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name }}
{{- end -}}
{{- end -}}

{{/* Name of the router's ServiceAccount. */}}
{{- define "fleetroute.routerServiceAccount" -}}
{{- if .Values.router.serviceAccount.create -}}
{{ .Values.router.serviceAccount.name | default (printf "%s-router" (include "fleetroute.fullname" .)) }}
{{- else -}}
{{ required "router.serviceAccount.name is required when router.serviceAccount.create is false" .Values.router.serviceAccount.name }}
{{- end -}}
{{- end -}}

{{/* Name of the router's Deployment and Service: the gateway's in sidecar mode. */}}
{{- define "fleetroute.routerName" -}}
{{ include "fleetroute.fullname" . }}-{{ ternary "gateway" "router" (eq .Values.router.mode "sidecar") }}
{{- end -}}

{{/* RBAC rules of the operator in a namespace it watches (every namespace when cluster-wide). */}}
{{- define "fleetroute.operatorNamespacedRules" -}}
# The pods of ModelPools (their endpoints) and of GPU nodes (GPU accounting): kopf index.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
# The namespaced custom resources: watched, given kopf's progress annotations (patch), and their
# status patched.
- apiGroups: [fleetroute.dev]
  resources: [modelpools, routingpolicies]
  verbs: [list, watch, patch]
- apiGroups: [fleetroute.dev]
  resources: [modelpools/status, routingpolicies/status]
  verbs: [patch]
# A ModelPool's Deployment and Service: read first (the operator never takes over one it does not
# control), then server-side applied (create when absent, else patch).
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, create, patch]
- apiGroups: [""]
  resources: [services]
  verbs: [get, create, patch]
# kopf's events on the objects it handles (it only creates them).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{/* Labels of the model-server pods the operator builds (operator/fleetroute_operator/labels.py). */}}
{{- define "fleetroute.modelServerSelector" -}}
app.kubernetes.io/name: model-server
app.kubernetes.io/part-of: fleetroute
app.kubernetes.io/managed-by: fleetroute-operator
{{- end -}}
