// Package kpclient reports a KubeProbe run's result from a probe written in Go.
//
// It is the Go twin of the Python probe_sdk (standard library only): KubeProbe starts
// each probe pod with the env contract (KUBEPROBE_REPORT_URL, KUBEPROBE_RUN_ID,
// KUBEPROBE_TOKEN, KUBEPROBE_DEADLINE, KUBEPROBE_CLUSTER); the probe does its work and
// reports once:
//
//	if err := check(); err != nil {
//		kpclient.ReportFailure([]string{err.Error()})
//	} else {
//		kpclient.ReportSuccess()
//	}
//
// or times named steps with a Probe and reports on Finish. Reports are retried on
// refused connections, 5xx and 429 with backoff until the run's deadline; a run
// reports once (a second report is ErrAlreadyReported); a missing env is an *EnvError
// naming the variables.
package kpclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// The env contract's variables that a report needs.
var envVars = []string{"KUBEPROBE_REPORT_URL", "KUBEPROBE_RUN_ID", "KUBEPROBE_TOKEN", "KUBEPROBE_DEADLINE"}

// Limits that keep a report well inside what the portal accepts (256 KiB), so a
// result is never refused for its form.
const (
	maxErrors     = 50
	maxErrorChars = 4000
	maxSteps      = 500
	maxName       = 200
	maxStepError  = 2000
	maxMetrics    = 500
)

// Statuses worth another try: the portal is restarting, overloaded or throttling.
var transient = map[int]bool{408: true, 425: true, 429: true, 500: true, 502: true, 503: true, 504: true}

// ErrAlreadyReported: this process already reported; a run reports once.
var ErrAlreadyReported = errors.New("kpclient: this run already reported its result")

// EnvError: the env contract is missing or malformed (not started by KubeProbe?).
type EnvError struct {
	Missing []string // the variables that are not set
	Detail  string   // what is wrong otherwise
}

func (e *EnvError) Error() string {
	if len(e.Missing) > 0 {
		return "kpclient needs the env KubeProbe sets on probe pods; missing: " + strings.Join(e.Missing, ", ")
	}
	return "kpclient: " + e.Detail
}

// RejectedError: the portal refused the report for good (bad token, past the
// deadline, bad body), or the deadline passed before it got through (Status 0).
type RejectedError struct {
	Status int
	Body   string
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("kpclient: KubeProbe rejected the report: HTTP %d: %s", e.Status, truncate(e.Body, 500))
}

// Env is the env contract of one run.
type Env struct {
	ReportURL string
	RunID     string
	Token     string
	Deadline  time.Time
	Cluster   string
}

// LoadEnv reads the env contract from the process environment.
func LoadEnv() (Env, error) { return envFrom(os.Getenv) }

func envFrom(get func(string) string) (Env, error) {
	var missing []string
	for _, name := range envVars {
		if get(name) == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return Env{}, &EnvError{Missing: missing}
	}
	seconds, err := strconv.ParseFloat(get("KUBEPROBE_DEADLINE"), 64)
	if err != nil || math.IsNaN(seconds) || math.IsInf(seconds, 0) {
		return Env{}, &EnvError{Detail: fmt.Sprintf("KUBEPROBE_DEADLINE must be unix seconds, got %q", get("KUBEPROBE_DEADLINE"))}
	}
	whole, frac := math.Modf(seconds)
	return Env{
		ReportURL: get("KUBEPROBE_REPORT_URL"),
		RunID:     get("KUBEPROBE_RUN_ID"),
		Token:     get("KUBEPROBE_TOKEN"),
		Deadline:  time.Unix(int64(whole), int64(frac*1e9)),
		Cluster:   get("KUBEPROBE_CLUSTER"),
	}, nil
}

// Step is one timed part of a probe, as the portal stores it.
type Step struct {
	Name       string  `json:"name"`
	OK         bool    `json:"ok"`
	DurationMS float64 `json:"duration_ms"`
	Error      string  `json:"error"`
}

type body struct {
	OK      bool               `json:"ok"`
	Errors  []string           `json:"errors"`
	Steps   []Step             `json:"steps"`
	Metrics map[string]float64 `json:"metrics"`
}

var (
	mu       sync.Mutex
	reported bool
	// HTTPClient sends the reports; replace it for a proxy or custom TLS.
	HTTPClient = &http.Client{}
)

// ReportSuccess reports that the run succeeded.
func ReportSuccess() error { return Report(true, nil, nil, nil) }

// ReportFailure reports that the run failed, with its error messages.
func ReportFailure(errorMessages []string) error { return Report(false, errorMessages, nil, nil) }

// Report sends the run's one result with its steps and metrics, retrying transient
// failures until the deadline. A failure needs at least one message (one is supplied
// if none is given); a success carries none.
func Report(ok bool, errorMessages []string, steps []Step, metrics map[string]float64) error {
	env, err := LoadEnv()
	if err != nil {
		return err
	}
	return ReportTo(env, ok, errorMessages, steps, metrics)
}

// ReportTo is Report with the env given rather than read from the process.
func ReportTo(env Env, ok bool, errorMessages []string, steps []Step, metrics map[string]float64) error {
	if ok && len(errorMessages) > 0 {
		return errors.New("kpclient: a successful report carries no errors")
	}
	payload := body{OK: ok, Errors: cleanErrors(errorMessages), Steps: cleanSteps(steps), Metrics: cleanMetrics(metrics)}
	if !ok && len(payload.Errors) == 0 {
		payload.Errors = []string{"probe reported failure without a message"}
	}
	data, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("kpclient: cannot encode the report: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if reported {
		return ErrAlreadyReported
	}
	delay := 500 * time.Millisecond
	last := "no attempt made"
	for {
		remaining := time.Until(env.Deadline)
		if remaining <= 0 {
			return &RejectedError{Status: 0, Body: "deadline passed before the report got through: " + last}
		}
		status, text, err := post(env, data, clamp(remaining, time.Second, 10*time.Second))
		if err == nil && (status/100 == 2 || status == http.StatusConflict) {
			// 409: the portal already has a result for this run; never send again.
			reported = true
			return nil
		}
		if err == nil && !transient[status] {
			return &RejectedError{Status: status, Body: text}
		}
		if err != nil {
			last = err.Error() // refused, reset, DNS, timeout: all worth another try
		} else {
			last = fmt.Sprintf("HTTP %d: %s", status, truncate(text, 200))
		}
		sleep := delay
		if left := time.Until(env.Deadline); left < sleep {
			sleep = left
		}
		if sleep > 0 {
			time.Sleep(time.Duration(float64(sleep) * (0.5 + rand.Float64()/2))) // jitter
		}
		delay = clamp(delay*2, 0, 10*time.Second)
	}
}

func post(env Env, data []byte, timeout time.Duration) (int, string, error) {
	request, err := http.NewRequest(http.MethodPost, env.ReportURL, bytes.NewReader(data))
	if err != nil {
		return 0, "", err
	}
	request.Header.Set("Content-Type", "application/json")
	request.Header.Set("Authorization", "Bearer "+env.Token)
	request.Header.Set("User-Agent", "kubeprobe-probe-sdk-go")
	client := *HTTPClient
	client.Timeout = timeout
	response, err := client.Do(request)
	if err != nil {
		return 0, "", err
	}
	defer response.Body.Close()
	text, err := io.ReadAll(io.LimitReader(response.Body, 64<<10))
	if err != nil {
		return 0, "", err
	}
	return response.StatusCode, string(text), nil
}

func clamp(d, low, high time.Duration) time.Duration {
	if d < low {
		return low
	}
	if d > high {
		return high
	}
	return d
}

// text is what the portal stores: valid UTF-8, no NUL, at most limit characters.
func text(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "")
	return truncate(s, limit)
}

func truncate(s string, limit int) string {
	if utf8.RuneCountInString(s) <= limit {
		return s
	}
	return string([]rune(s)[:limit])
}

func cleanErrors(messages []string) []string {
	out := []string{}
	for _, message := range messages {
		if len(out) == maxErrors {
			break
		}
		if message = text(message, maxErrorChars); message == "" {
			message = "(empty message)"
		}
		out = append(out, message)
	}
	return out
}

func cleanSteps(steps []Step) []Step {
	out := []Step{}
	for _, step := range steps {
		if len(out) == maxSteps {
			break
		}
		name := text(step.Name, maxName)
		if name == "" {
			name = "step"
		}
		duration := step.DurationMS
		if math.IsNaN(duration) || duration < 0 {
			duration = 0
		}
		out = append(out, Step{Name: name, OK: step.OK, DurationMS: math.Min(duration, 1e12), Error: text(step.Error, maxStepError)})
	}
	return out
}

func cleanMetrics(metrics map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for name, value := range metrics {
		if len(out) == maxMetrics {
			break
		}
		if math.IsNaN(value) || math.IsInf(value, 0) || math.Abs(value) >= 1e300 {
			continue // JSON has no NaN or infinities
		}
		if name = text(name, maxName); name == "" {
			name = "metric"
		}
		out[name] = value
	}
	return out
}
