// Command httpcheck is an example KubeProbe case in Go: it checks an HTTP endpoint
// the way its users reach it and reports timed steps with kpclient.
//
// Env (besides KubeProbe's contract):
//
//	HTTPCHECK_URL            what to GET (default: the portal's own /livez)
//	HTTPCHECK_EXPECT_STATUS  the status that counts as working (200)
//	HTTPCHECK_BODY_CONTAINS  text the body must contain (none)
//	HTTPCHECK_THRESHOLD_MS   slower than this fails the request step (2000)
package main

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	kpclient "kubeprobe.dev/probe-sdk"
)

func main() {
	probe, err := kpclient.NewProbe()
	if err != nil {
		log.Fatal(err) // not started by KubeProbe: the error names the missing env
	}
	defer probe.Finish()

	target := os.Getenv("HTTPCHECK_URL")
	if target == "" {
		portal, err := url.Parse(probe.Env().ReportURL)
		if err != nil {
			probe.Fail("KUBEPROBE_REPORT_URL is not a URL: " + err.Error())
			return
		}
		target = portal.Scheme + "://" + portal.Host + "/livez"
	}
	want := intFromEnv("HTTPCHECK_EXPECT_STATUS", http.StatusOK)
	threshold := time.Duration(intFromEnv("HTTPCHECK_THRESHOLD_MS", 2000)) * time.Millisecond

	var response *http.Response
	var payload []byte
	client := &http.Client{Timeout: 30 * time.Second}
	started := time.Now()
	probe.StepWithin("GET "+target, threshold, func() error {
		var err error
		if response, err = client.Get(target); err != nil {
			return err
		}
		defer response.Body.Close()
		payload, err = io.ReadAll(io.LimitReader(response.Body, 1<<20))
		return err
	})
	probe.Metric("latency_ms", float64(time.Since(started).Milliseconds()))
	if response == nil {
		return // the request itself failed; the step says why
	}
	probe.Metric("status", float64(response.StatusCode))
	probe.Step("status", func() error {
		if response.StatusCode != want {
			return fmt.Errorf("got HTTP %d, want %d", response.StatusCode, want)
		}
		return nil
	})
	if text := os.Getenv("HTTPCHECK_BODY_CONTAINS"); text != "" {
		probe.Step("body", func() error {
			if !strings.Contains(string(payload), text) {
				return fmt.Errorf("the body does not contain %q", text)
			}
			return nil
		})
	}
}

func intFromEnv(name string, fallback int) int {
	value, err := strconv.Atoi(os.Getenv(name))
	if err != nil {
		return fallback
	}
	return value
}
