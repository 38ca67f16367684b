{{/*
Helpers use only .Values and .Release, so an application chart that has this chart as a
dependency can call them with (dict "Values" (index .Values "pulsar-sidecar") "Release" .Release).
*/}}

{{- define "pulsar-sidecar.name" -}}
{{- default "pulsar-sidecar" .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pulsar-sidecar.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "pulsar-sidecar.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "pulsar-sidecar.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pulsar-sidecar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "pulsar-sidecar.labels" -}}
{{ include "pulsar-sidecar.selectorLabels" . }}
app.kubernetes.io/version: {{ include "pulsar-sidecar.imageTag" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pulsar-sidecar
{{- end -}}

{{- define "pulsar-sidecar.imageTag" -}}
{{- .Values.image.tag | default "dev" -}}
{{- end -}}

{{- define "pulsar-sidecar.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "pulsar-sidecar.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "pulsar-sidecar.secretName" -}}
{{- if .Values.existingSecret -}}
{{- .Values.existingSecret -}}
{{- else if .Values.secretEnv -}}
{{- include "pulsar-sidecar.fullname" . -}}
{{- end -}}
{{- end -}}

{{/* gateway workload kind: Deployment or StatefulSet */}}
{{- define "pulsar-sidecar.workload" -}}
{{- if eq .Values.workload "auto" -}}
{{- if .Values.persistence.enabled -}}StatefulSet{{- else -}}Deployment{{- end -}}
{{- else if has .Values.workload (list "Deployment" "StatefulSet") -}}
{{- .Values.workload -}}
{{- else -}}
{{- fail (printf "workload %q: want auto, Deployment or StatefulSet" .Values.workload) -}}
{{- end -}}
{{- end -}}

{{/* The configuration file: config with listen and dataDir filled in. */}}
{{- define "pulsar-sidecar.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- if not (hasKey $cfg "listen") -}}
{{- if eq .Values.mode "gateway" -}}
{{- $_ := set $cfg "listen" (printf "0.0.0.0:%v" .Values.port) -}}
{{- else -}}
{{- $_ := set $cfg "listen" (printf "127.0.0.1:%v" .Values.port) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.managementPort (not (dig "management" "listen" "" $cfg)) -}}
{{- $mgmt := deepCopy (get $cfg "management" | default dict) -}}
{{- $_ := set $mgmt "listen" (printf "0.0.0.0:%v" .Values.managementPort) -}}
{{- $_ := set $cfg "management" $mgmt -}}
{{- end -}}
{{- if not (hasKey $cfg "dataDir") -}}
{{- $_ := set $cfg "dataDir" "/var/lib/pulsar-sidecar" -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* Checks that stop an install that could not work, with the reason. */}}
{{- define "pulsar-sidecar.validate" -}}
{{- if not (has .Values.mode (list "gateway" "sidecar")) -}}
{{- fail (printf "mode %q: want gateway or sidecar" .Values.mode) -}}
{{- end -}}
{{- $cfg := .Values.config | default dict -}}
{{- if and (eq .Values.mode "gateway") (not $cfg.apps) -}}
{{- fail "mode gateway needs config.apps: a gateway listens on the pod network, and the sidecar refuses a non-loopback listener without apps (docs/configuration.md, \"Apps and tokens\")" -}}
{{- end -}}
{{- $replicas := ternary .Values.autoscaling.maxReplicas .Values.replicaCount .Values.autoscaling.enabled -}}
{{- if and (eq .Values.mode "gateway") (gt (int $replicas) 1) (not .Values.existingSecret) (not (hasKey (.Values.secretEnv | default dict) "PSC_CONSUME_SECRET")) (not (dig "consume" "secret" "" $cfg)) -}}
{{- fail "a gateway with more than one replica needs PSC_CONSUME_SECRET (in secretEnv or existingSecret): ackIds are signed by one replica and checked by another" -}}
{{- end -}}
{{- if and .Values.existingSecret .Values.secretEnv -}}
{{- fail "give secretEnv or existingSecret, not both" -}}
{{- end -}}
{{- end -}}

{{/*
The sidecar container. Call with the chart's context; from an application chart:
  containers:
    - name: app
      ...
    {{- include "pulsar-sidecar.container" (dict "Values" (index .Values "pulsar-sidecar") "Release" .Release) | nindent 4 }}
*/}}
{{- define "pulsar-sidecar.container" -}}
{{- $gateway := eq .Values.mode "gateway" -}}
- name: pulsar-sidecar
  image: "{{ .Values.image.repository }}:{{ include "pulsar-sidecar.imageTag" . }}"
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["--config", "/etc/pulsar-sidecar/config.yaml"]
  {{- with .Values.env }}
  env:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if include "pulsar-sidecar.secretName" . }}
  envFrom:
    - secretRef:
        name: {{ include "pulsar-sidecar.secretName" . }}
  {{- end }}
  ports:
    - name: {{ ternary "http" "psc-http" $gateway }}
      containerPort: {{ .Values.port }}
      protocol: TCP
    {{- if .Values.managementPort }}
    - name: {{ ternary "mgmt" "psc-mgmt" $gateway }}
      containerPort: {{ .Values.managementPort }}
      protocol: TCP
    {{- end }}
  {{- if $gateway }}
  {{- $probePort := ternary "mgmt" "http" (not (empty .Values.managementPort)) }}
  startupProbe:
    httpGet: {path: /healthz, port: {{ $probePort }}}
    periodSeconds: 5
    failureThreshold: {{ .Values.probes.startupFailureThreshold }}
  livenessProbe:
    httpGet: {path: /healthz, port: {{ $probePort }}}
    periodSeconds: {{ .Values.probes.livenessPeriodSeconds }}
    timeoutSeconds: 3
    failureThreshold: 3
  readinessProbe:
    httpGet: {path: /readyz, port: {{ $probePort }}}
    periodSeconds: {{ .Values.probes.readinessPeriodSeconds }}
    timeoutSeconds: 3
    failureThreshold: 2
  {{- else }}
  startupProbe:
    exec: {command: ["/usr/local/bin/pulsar-sidecar", "healthcheck", "--config", "/etc/pulsar-sidecar/config.yaml"]}
    periodSeconds: 5
    timeoutSeconds: 4
    failureThreshold: {{ .Values.probes.startupFailureThreshold }}
  livenessProbe:
    exec: {command: ["/usr/local/bin/pulsar-sidecar", "healthcheck", "--config", "/etc/pulsar-sidecar/config.yaml"]}
    periodSeconds: {{ .Values.probes.livenessPeriodSeconds }}
    timeoutSeconds: 4
    failureThreshold: 3
  readinessProbe:
    exec: {command: ["/usr/local/bin/pulsar-sidecar", "healthcheck", "--config", "/etc/pulsar-sidecar/config.yaml", "--path", "/readyz"]}
    periodSeconds: {{ .Values.probes.readinessPeriodSeconds }}
    timeoutSeconds: 4
    failureThreshold: 2
  {{- end }}
  {{- with .Values.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: pulsar-sidecar-config
      mountPath: /etc/pulsar-sidecar
      readOnly: true
    - name: pulsar-sidecar-data
      mountPath: /var/lib/pulsar-sidecar
    - name: pulsar-sidecar-tmp
      mountPath: /tmp
    {{- range $i, $v := .Values.secretVolumes }}
    - name: pulsar-sidecar-secret-{{ $i }}
      mountPath: {{ required "secretVolumes[].mountPath" $v.mountPath }}
      readOnly: true
    {{- end }}
{{- end -}}

{{/*
The sidecar's volumes: the configuration, /tmp (the root filesystem is read-only) and, unless a
StatefulSet claims one per pod, the data directory as an emptyDir. An application chart adds
  volumes:
    {{- include "pulsar-sidecar.volumes" (dict "Values" (index .Values "pulsar-sidecar") "Release" .Release) | nindent 4 }}
*/}}
{{- define "pulsar-sidecar.volumes" -}}
- name: pulsar-sidecar-config
  configMap:
    name: {{ include "pulsar-sidecar.fullname" . }}
- name: pulsar-sidecar-tmp
  emptyDir:
    sizeLimit: 256Mi
{{- range $i, $v := .Values.secretVolumes }}
- name: pulsar-sidecar-secret-{{ $i }}
  secret:
    secretName: {{ required "secretVolumes[].secretName" $v.secretName }}
    defaultMode: 0400
{{- end }}
{{- if not (and (eq .Values.mode "gateway") (eq (include "pulsar-sidecar.workload" .) "StatefulSet") .Values.persistence.enabled) }}
- name: pulsar-sidecar-data
  emptyDir:
    sizeLimit: {{ .Values.persistence.emptyDirSizeLimit }}
{{- end }}
{{- end -}}

{{/*
Pod annotations that roll the pods when the configuration changes. An application chart adds
them to its pod template's annotations.
*/}}
{{- define "pulsar-sidecar.podAnnotations" -}}
checksum/pulsar-sidecar-config: {{ include "pulsar-sidecar.config" . | sha256sum }}
{{- end -}}
