{{/* Chart name and version, for the chart label. */}}
{{- define "serin.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The chart's name. */}}
{{- define "serin.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Object names: the release name when it contains the chart's name or "flagger" (so
`helm upgrade -i flagger ...` gives deploy/flagger, as with Flagger's chart), else <release>-<name>.
*/}}
{{- define "serin.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if or (contains $name .Release.Name) (contains "flagger" .Release.Name) -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "serin.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ default (include "serin.fullname" .) .Values.serviceAccount.name }}
{{- else -}}
{{ default "default" .Values.serviceAccount.name }}
{{- end -}}
{{- end -}}

{{- define "serin.labels" -}}
helm.sh/chart: {{ include "serin.chart" . }}
app.kubernetes.io/name: {{ include "serin.name" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The mesh control plane kubeconfig Secret: controlplane.kubeconfig, else istio.kubeconfig. */}}
{{- define "serin.meshKubeconfigSecret" -}}
{{- if .Values.controlplane.kubeconfig.secretName -}}
{{ .Values.controlplane.kubeconfig.secretName }}
{{- else if .Values.istio -}}
{{ .Values.istio.kubeconfig.secretName | default "" }}
{{- end -}}
{{- end -}}

{{- define "serin.meshKubeconfigKey" -}}
{{- if .Values.controlplane.kubeconfig.secretName -}}
{{ .Values.controlplane.kubeconfig.key | default "kubeconfig" }}
{{- else -}}
{{ .Values.istio.kubeconfig.key | default "kubeconfig" }}
{{- end -}}
{{- end -}}

{{/*
The controller's RBAC rules (crates/serin/src/rbac.rs; docs/install.md says which code path uses
which rule). Argument: a dict with "root" (the chart context) and "cluster" (true for a
ClusterRole, whose extra rules are external metrics and /version).
*/}}
{{- define "serin.rules" -}}
{{- $tracking := .root.Values.configTracking.enabled -}}
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- if $tracking }}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "patch"]
{{- end }}
- apiGroups: ["apps"]
  resources: ["deployments", "daemonsets"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "update"]
- apiGroups: ["flagger.app"]
  resources: ["canaries"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["flagger.app"]
  resources: ["canaries/status"]
  verbs: ["patch", "update"]
- apiGroups: ["flagger.app"]
  resources: ["canaries/finalizers"]
  verbs: ["update"]
- apiGroups: ["flagger.app"]
  resources: ["metrictemplates", "alertproviders"]
  verbs: ["get", "list"]
- apiGroups: ["networking.istio.io"]
  resources: ["virtualservices", "destinationrules"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["serving.knative.dev"]
  resources: ["services"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["serving.knative.dev"]
  resources: ["revisions"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["metrics.keptn.sh"]
  resources: ["keptnmetrics"]
  verbs: ["get"]
- apiGroups: ["metrics.keptn.sh"]
  resources: ["analyses"]
  verbs: ["get", "create", "delete"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes", "grpcroutes"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["split.smi-spec.io"]
  resources: ["trafficsplits"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["projectcontour.io"]
  resources: ["httpproxies"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["gloo.solo.io"]
  resources: ["upstreams"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["gateway.solo.io"]
  resources: ["routetables"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["traefik.io"]
  resources: ["traefikservices"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["kuma.io"]
  resources: ["trafficroutes"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["apisix.apache.org"]
  resources: ["apisixroutes"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["appmesh.k8s.aws"]
  resources: ["virtualnodes", "virtualrouters", "virtualservices"]
  verbs: ["get", "list", "watch", "create", "patch"]
{{- if .cluster }}
- apiGroups: ["external.metrics.k8s.io"]
  resources: ["*"]
  verbs: ["get"]
- nonResourceURLs: ["/version"]
  verbs: ["get"]
{{- end }}
{{- end -}}
