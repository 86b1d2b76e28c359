{{/* Names ------------------------------------------------------------------------------------ */}}
{{- define "roomcast.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "roomcast.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "roomcast.selectorLabels" -}}
app.kubernetes.io/name: {{ include "roomcast.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "roomcast.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "roomcast.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: broker
app.kubernetes.io/part-of: roomcast
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "roomcast.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "roomcast.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "roomcast.secretName" -}}
{{- default (include "roomcast.fullname" .) .Values.auth.existingSecret -}}
{{- end -}}

{{- define "roomcast.redisSecretName" -}}
{{- if .Values.redis.existingSecret -}}
{{- .Values.redis.existingSecret -}}
{{- else -}}
{{- include "roomcast.secretName" . -}}
{{- end -}}
{{- end -}}

{{- define "roomcast.redisSecretKey" -}}
{{- if .Values.redis.existingSecret -}}
{{- .Values.redis.existingSecretKey -}}
{{- else if .Values.auth.existingSecret -}}
{{- .Values.redis.existingSecretKey -}}
{{- else -}}
redis-url
{{- end -}}
{{- end -}}

{{/* The Redis TLS files the pods mount, as "ca cert key " (each present word: that file is
mounted under /etc/roomcast/redis-tls as ca.crt, tls.crt, tls.key); empty when none. */}}
{{- define "roomcast.redisTls" -}}
{{- $t := .Values.redis.tls -}}
{{- if $t.existingSecret -}}
{{- if $t.caKey }}ca {{ end -}}{{- if $t.certKey }}cert {{ end -}}{{- if $t.keyKey }}key {{ end -}}
{{- else -}}
{{- if $t.ca }}ca {{ end -}}{{- if $t.cert }}cert {{ end -}}{{- if $t.key }}key {{ end -}}
{{- end -}}
{{- end -}}

{{- define "roomcast.redisTlsSecretName" -}}
{{- if .Values.redis.tls.existingSecret -}}
{{- .Values.redis.tls.existingSecret -}}
{{- else -}}
{{- include "roomcast.fullname" . }}-redis-tls
{{- end -}}
{{- end -}}

{{/* Whether a Redis URL reaches the pods (required unless sentinels or cluster nodes are given). */}}
{{- define "roomcast.redisUrl" -}}
{{- if and (not .Values.redis.embedded) (or .Values.redis.url .Values.redis.existingSecret .Values.auth.existingSecret) -}}
true
{{- end -}}
{{- end -}}

{{/* Whether the pods mount a JWT public key file. */}}
{{- define "roomcast.publicKey" -}}
{{- if or .Values.auth.jwtPublicKey (and .Values.auth.existingSecret .Values.auth.existingSecretHasPublicKey) -}}
true
{{- end -}}
{{- end -}}

{{/* The drain grace in whole seconds (rounded up). */}}
{{- define "roomcast.drainSeconds" -}}
{{- $grace := 30000 -}}
{{- if and .Values.config .Values.config.drain (hasKey .Values.config.drain "grace") -}}
{{- $grace = int .Values.config.drain.grace -}}
{{- end -}}
{{- div (add $grace 999) 1000 -}}
{{- end -}}

{{- define "roomcast.terminationGracePeriodSeconds" -}}
{{- $drain := int (include "roomcast.drainSeconds" .) -}}
{{- $pre := int .Values.preStopSleepSeconds -}}
{{- if .Values.terminationGracePeriodSeconds -}}
{{- $t := int .Values.terminationGracePeriodSeconds -}}
{{- if le $t (add $pre $drain) -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be above preStopSleepSeconds + drain.grace (%d s): the pod would be killed before its sockets are drained" $t (add $pre $drain)) -}}
{{- end -}}
{{- $t -}}
{{- else -}}
{{- add $pre $drain 15 -}}
{{- end -}}
{{- end -}}

{{/* Checks the values that cannot be left to the pods to discover. */}}
{{- define "roomcast.validate" -}}
{{- if not .Values.redis.embedded -}}
{{- if not (or .Values.redis.url .Values.redis.existingSecret .Values.auth.existingSecret .Values.redis.sentinel.hosts .Values.redis.cluster.nodes) -}}
{{- fail "redis.url (or redis.existingSecret) is required: nodes share rooms through Redis. For a single node without Redis set redis.embedded=true and replicaCount=1." -}}
{{- end -}}
{{- if and .Values.redis.sentinel.hosts .Values.redis.cluster.nodes -}}
{{- fail "redis.sentinel.hosts and redis.cluster.nodes cannot be used together (a cluster fails over by itself)" -}}
{{- end -}}
{{- if and .Values.redis.sentinel.hosts (not .Values.redis.sentinel.masterName) -}}
{{- fail "redis.sentinel.masterName is required with redis.sentinel.hosts" -}}
{{- end -}}
{{- $tls := include "roomcast.redisTls" . -}}
{{- if ne (contains "cert" $tls) (contains "key" $tls) -}}
{{- fail "redis.tls: a client certificate needs its key (cert and key, or certKey and keyKey), both or neither" -}}
{{- end -}}
{{- if and (or $tls .Values.redis.tls.serverName) .Values.redis.url (not (hasPrefix "rediss://" .Values.redis.url)) -}}
{{- fail "redis.tls is set but redis.url is not rediss://: write the URL as rediss://" -}}
{{- end -}}
{{- else -}}
{{- if or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled -}}
{{- fail "redis.embedded=true serves rooms from one pod only: set replicaCount=1 and autoscaling.enabled=false, or give a redis.url" -}}
{{- end -}}
{{- end -}}
{{- if not (or .Values.auth.jwtSecret .Values.auth.jwtPublicKey .Values.auth.existingSecret) -}}
{{- fail "a JWT key is required: auth.jwtSecret (HS256), auth.jwtPublicKey (RS/ES, PEM) or auth.existingSecret" -}}
{{- end -}}
{{- if .Values.config -}}
{{- range $k := list "listen" "nodeId" "redis" "api" -}}
{{- if hasKey $.Values.config $k -}}
{{- fail (printf "config.%s is set by the chart (environment and Secret): remove it from config" $k) -}}
{{- end -}}
{{- end -}}
{{- if and (hasKey .Values.config "jwt") (hasKey .Values.config.jwt "secret") -}}
{{- fail "config.jwt.secret would land in a ConfigMap: use auth.jwtSecret (a Secret) instead" -}}
{{- end -}}
{{- if hasKey .Values.config "dev" -}}
{{- fail "config.dev is the development page (docs/config.md): never in a chart deployment; use deploy/dev-run.sh on a workstation" -}}
{{- end -}}
{{- end -}}
{{- range .Values.extraEnv -}}
{{- if hasPrefix "ROOMCAST_DEV_" (toString .name) -}}
{{- fail (printf "extraEnv %s is the development page (docs/config.md): never in a chart deployment" .name) -}}
{{- end -}}
{{- end -}}
{{- if not (has .Values.ingress.sticky (list "cookie" "ip" "none")) -}}
{{- fail "ingress.sticky must be cookie, ip or none" -}}
{{- end -}}
{{- end -}}
