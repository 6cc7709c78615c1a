{{/* Names, labels and the Ray pods' environment, shared by every template. */}}

{{/* The release's objects are named after it: binder-actors, binder-actors-builds, binder-actors-serve-svc. */}}
{{- define "binder-actors.fullname" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "binder-actors.labels" -}}
app.kubernetes.io/name: binder-actors
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The Secret holding the secret settings: the chart's, or the operator's own. */}}
{{- define "binder-actors.secretName" -}}
{{- .Values.secret.existingSecret | default (include "binder-actors.fullname" .) -}}
{{- end -}}

{{/*
BINDER_* env vars of the Ray pods: every config value (strings as they are, anything else as JSON, which
BinderConfig reads for numbers, booleans, lists and mappings), then every secret setting from the Secret.
*/}}
{{- define "binder-actors.env" -}}
- name: BINDER_KUBE_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- range $name, $value := .Values.config }}
- name: BINDER_{{ upper $name }}
  value: {{ kindIs "string" $value | ternary $value (toJson $value) | quote }}
{{- end }}
{{- $secret := include "binder-actors.secretName" . }}
{{- range $name, $_ := .Values.secret.values }}
- name: BINDER_{{ upper $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $name }}
{{- end }}
{{- end -}}
