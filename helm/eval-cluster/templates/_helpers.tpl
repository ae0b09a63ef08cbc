{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "eval-cluster.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart unless the release name already contains the chart name. */}}
{{- define "eval-cluster.fullname" -}}
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

{{- define "eval-cluster.coordinator" -}}
{{- printf "%s-coordinator" (include "eval-cluster.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "eval-cluster.worker" -}}
{{- printf "%s-worker" (include "eval-cluster.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "eval-cluster.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "eval-cluster.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: eval-cluster
{{- end }}

{{/* Selector labels of one component: (dict "ctx" $ "component" "worker"). */}}
{{- define "eval-cluster.selectorLabels" -}}
app.kubernetes.io/name: {{ include "eval-cluster.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Image reference: (dict "ctx" $ "image" .Values.worker.image). */}}
{{- define "eval-cluster.image" -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) }}
{{- end }}

{{/* The Secret of one item of .Values.secrets: (dict "ctx" $ "item" .Values.secrets.hotkey). */}}
{{- define "eval-cluster.secretName" -}}
{{- default .ctx.Values.secrets.name .item.name }}
{{- end }}

{{/* The environment both binaries share: URLs from Secrets, the config file, JSON logs. */}}
{{- define "eval-cluster.commonEnv" -}}
- name: EVAL_CONFIG
  value: /etc/eval/config.toml
- name: EVAL_LOG_FORMAT
  value: json
- name: EVAL_AMQP_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "eval-cluster.secretName" (dict "ctx" . "item" .Values.secrets.amqpUrl) }}
      key: {{ .Values.secrets.amqpUrl.key }}
- name: EVAL_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "eval-cluster.secretName" (dict "ctx" . "item" .Values.secrets.redisUrl) }}
      key: {{ .Values.secrets.redisUrl.key }}
{{- end }}

{{/*
A TOML file of flat settings, written key by key so that whole numbers stay
integers (Helm reads YAML numbers as float64, and toToml would write 100.0,
which the binaries' u64 settings refuse). Strings are quoted as JSON strings,
which TOML basic strings accept.
*/}}
{{- define "eval-cluster.toml" -}}
{{- range $key, $value := . }}
{{- if or (kindIs "float64" $value) (kindIs "int" $value) (kindIs "int64" $value) }}
{{- if eq (float64 $value) (floor $value) }}
{{ $key }} = {{ int64 $value }}
{{- else }}
{{ $key }} = {{ $value }}
{{- end }}
{{- else if kindIs "bool" $value }}
{{ $key }} = {{ $value }}
{{- else if kindIs "string" $value }}
{{ $key }} = {{ $value | toJson }}
{{- else }}
{{- fail (printf "config key %s: only strings, numbers and booleans are supported" $key) }}
{{- end }}
{{- end }}
{{- end }}
