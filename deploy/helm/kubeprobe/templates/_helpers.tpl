{{- define "kubeprobe.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kubeprobe.labels" -}}
app.kubernetes.io/name: kubeprobe
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "web") */}}
{{- define "kubeprobe.selector" -}}
app.kubernetes.io/name: kubeprobe
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "kubeprobe.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* A queue kind's Celery queue name. (dict "root" $ "kind" "dispatch") */}}
{{- define "kubeprobe.queue" -}}
{{- if eq .kind "default" -}}
{{ .root.Values.celeryDefaultQueue }}
{{- else -}}
{{ .root.Values.celeryDefaultQueue }}.{{ .kind }}
{{- end -}}
{{- end -}}

{{/* The environment every container gets: secrets by reference, settings inline. */}}
{{- define "kubeprobe.env" -}}
{{- $secret := .Values.existingSecret -}}
- name: SECRET_KEY
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: {{ .Values.secretKeys.secretKey }}}}
- name: KUBEPROBE_ENCRYPTION_KEY
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: {{ .Values.secretKeys.encryptionKey }}}}
- name: DATABASE_URL
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: {{ .Values.secretKeys.databaseUrl }}}}
- name: REDIS_URL
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: {{ .Values.secretKeys.redisUrl }}}}
- name: KUBEPROBE_METRICS_TOKEN
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: {{ .Values.secretKeys.metricsToken }}, optional: true}}
- name: KUBEPROBE_PUBLIC_URL
  value: {{ .Values.publicUrl | quote }}
# The pod's own IP too: kubelet probes and Prometheus address pods by IP.
- name: POD_IP
  valueFrom: {fieldRef: {fieldPath: status.podIP}}
- name: ALLOWED_HOSTS
  value: {{ printf "%s,$(POD_IP)" (join "," .Values.allowedHosts) | quote }}
- name: CSRF_TRUSTED_ORIGINS
  value: {{ .Values.publicUrl | quote }}
- name: CELERY_TASK_DEFAULT_QUEUE
  value: {{ .Values.celeryDefaultQueue | quote }}
- name: KUBEPROBE_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: KUBEPROBE_INSTALLATION
  value: {{ include "kubeprobe.fullname" . | quote }}
{{- if .Values.tlsBehindProxy }}
- name: SECURE_PROXY_SSL_HEADER
  value: "true"
- name: SECURE_SSL_REDIRECT
  value: "true"
{{- end }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* Pod-level spec shared by every component. */}}
{{- define "kubeprobe.podSpec" -}}
serviceAccountName: {{ include "kubeprobe.fullname" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  # The only writable path (read-only root filesystem): KUBEPROBE_VAR_DIR, metrics files.
  - name: tmp
    emptyDir: {}
{{- end -}}

{{/* Container-level settings shared by every component. */}}
{{- define "kubeprobe.container" -}}
image: {{ include "kubeprobe.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end -}}

{{/* Health endpoints are exempt from the HTTPS redirect; the pod IP is an allowed host. */}}
{{- define "kubeprobe.httpProbe" -}}
httpGet:
  path: {{ .path }}
  port: {{ .port }}
{{- end -}}
