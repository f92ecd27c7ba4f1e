{{/* Names and labels shared by every template. */}}

{{- define "tenant-enforcer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's objects are named after the release, unless it already says tenant-enforcer. */}}
{{- define "tenant-enforcer.fullname" -}}
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

{{- define "tenant-enforcer.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tenant-enforcer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tenant-enforcer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tenant-enforcer.labels" -}}
helm.sh/chart: {{ include "tenant-enforcer.chart" . }}
{{ include "tenant-enforcer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tenant-enforcer
{{- end }}

{{- define "tenant-enforcer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tenant-enforcer.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tenant-enforcer.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Where the operator writes evidence snapshots: its built-in default, which has no flag yet. */}}
{{- define "tenant-enforcer.evidencePath" -}}
/var/lib/tenant-enforcer/evidence
{{- end }}

{{- define "tenant-enforcer.evidenceClaim" -}}
{{- default (printf "%s-evidence" (include "tenant-enforcer.fullname" .)) .Values.evidence.persistence.existingClaim }}
{{- end }}
