module kubeprobe.dev/probe-sdk

go 1.21
