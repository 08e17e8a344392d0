{{/* Names, labels, the RBAC rules and the checks of contradictory values. */}}

{{- define "workerpool-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release name, plus the chart name unless the release name already contains it. */}}
{{- define "workerpool-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "workerpool-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "workerpool-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "workerpool-operator.labels" -}}
{{ include "workerpool-operator.selectorLabels" . }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: workerpool
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- /* The operations kit's labels: the operator's, without its component (each object sets one). */ -}}
{{- define "workerpool-operator.kitLabels" -}}
{{ include "workerpool-operator.selectorLabels" . }}
app.kubernetes.io/part-of: workerpool
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "workerpool-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "workerpool-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create=false: name the existing ServiceAccount the operator runs as" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Rules for the namespaced resources: the ClusterRole's first rules and, with
rbac.clusterWide=false, the whole Role. Same rules, in the same order, as
manifests/rbac/cluster_role.yaml (a test compares them).
*/}}
{{- define "workerpool-operator.namespacedRules" -}}
# Kopf watches WorkerPools, the reconciler reads the live object, Kopf patches its annotations.
- apiGroups: [workerpool.dev]
  resources: [workerpools]
  verbs: [get, list, watch, patch]
# The reconciler writes the status (Ready/Reconciling/Stalled) by server-side apply.
- apiGroups: [workerpool.dev]
  resources: [workerpools/status]
  verbs: [patch]
# Children carry blockOwnerDeletion, which OwnerReferencesPermissionEnforcement checks here.
- apiGroups: [workerpool.dev]
  resources: [workerpools/finalizers]
  verbs: [update]
# Worker, beat, Flower and Redis Deployments: applied, watched for drift, pruned when disabled.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
# Flower and Redis Services: applied, watched for drift, pruned when disabled.
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch, delete]
# Generated Secrets created once (re-created when a user restored one), pruned; others read.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create, delete]
# ConfigMaps named in spec.env/envFrom: read to hash their data into the pod template.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
# The production Redis volume: applied, never deleted by the operator (data outlives edits).
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, create, patch]
# Disruption budgets of Redis and production workers: applied, pruned when not wanted.
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, create, patch, delete]
# Pods of a component that is not ready: their container statuses name the error.
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
# Worker pods get a pod-deletion-cost annotation from their load: idle ones go first.
- apiGroups: [""]
  resources: [pods]
  verbs: [patch]
# Kopf posts warning Events about WorkerPools.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{- define "workerpool-operator.clusterRules" -}}
# Kopf notices the WorkerPool CRD being (re)installed without a restart (cluster-wide only).
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- end }}

{{/* Contradictory values stop the release with a message saying what to change. */}}
{{- define "workerpool-operator.validate" -}}
{{- if gt (int .Values.replicaCount) 1 }}
{{- fail (printf "replicaCount=%d: the operator runs standalone (no Kopf peering) with the Recreate strategy, so replicas would reconcile every WorkerPool side by side; use replicaCount=1 (or 0 to pause it)" (int .Values.replicaCount)) }}
{{- end }}
{{- if and .Values.rbac.clusterWide .Values.watchNamespaces }}
{{- fail (printf "watchNamespaces=%v limits the operator to those namespaces but rbac.clusterWide=true grants it every namespace: set rbac.clusterWide=false (Roles in those namespaces only), or empty watchNamespaces to watch all" .Values.watchNamespaces) }}
{{- end }}
{{- if and (not .Values.rbac.clusterWide) (not .Values.watchNamespaces) }}
{{- fail "rbac.clusterWide=false gives the operator Roles only in watchNamespaces, but watchNamespaces is empty, which means every namespace: list the namespaces to watch in watchNamespaces, or set rbac.clusterWide=true" }}
{{- end }}
{{- end }}
