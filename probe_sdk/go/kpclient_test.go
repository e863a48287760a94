package kpclient

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// portal is a stand-in report endpoint answering the scripted statuses in turn (200 after).
type portal struct {
	mu       sync.Mutex
	answers  []int
	received []body
	auth     []string
	server   *httptest.Server
}

func newPortal(t *testing.T, answers ...int) *portal {
	p := &portal{answers: answers}
	p.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var got body
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Errorf("not JSON: %q", raw)
		}
		p.mu.Lock()
		p.received = append(p.received, got)
		p.auth = append(p.auth, r.Header.Get("Authorization"))
		status := http.StatusOK
		if len(p.answers) > 0 {
			status, p.answers = p.answers[0], p.answers[1:]
		}
		p.mu.Unlock()
		w.WriteHeader(status)
		w.Write([]byte(`{"detail": "scripted"}`))
	}))
	t.Cleanup(p.server.Close)
	reset()
	return p
}

func (p *portal) env(deadline time.Duration) Env {
	return Env{ReportURL: p.server.URL + "/api/v1/runs/7/report", RunID: "7", Token: "run-token", Deadline: time.Now().Add(deadline)}
}

func reset() {
	mu.Lock()
	reported = false
	mu.Unlock()
}

func TestMissingEnvIsNamed(t *testing.T) {
	_, err := envFrom(func(name string) string {
		if name == "KUBEPROBE_RUN_ID" {
			return "7"
		}
		return ""
	})
	var envErr *EnvError
	if !errors.As(err, &envErr) {
		t.Fatalf("want *EnvError, got %v", err)
	}
	want := "missing: KUBEPROBE_REPORT_URL, KUBEPROBE_TOKEN, KUBEPROBE_DEADLINE"
	if !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("%q does not end with %q", err, want)
	}
	_, err = envFrom(func(name string) string {
		if name == "KUBEPROBE_DEADLINE" {
			return "soon"
		}
		return "x"
	})
	if err == nil || !strings.Contains(err.Error(), `KUBEPROBE_DEADLINE must be unix seconds, got "soon"`) {
		t.Fatalf("bad deadline: %v", err)
	}
}

func TestTransientAnswersAreRetriedUntilAccepted(t *testing.T) {
	p := newPortal(t, 503, 502, 429)
	started := time.Now()
	if err := ReportTo(p.env(30*time.Second), false, []string{"boom"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if len(p.received) != 4 {
		t.Fatalf("want 4 attempts, got %d", len(p.received))
	}
	if p.auth[3] != "Bearer run-token" || p.received[3].OK || p.received[3].Errors[0] != "boom" {
		t.Fatalf("bad report: %+v %q", p.received[3], p.auth[3])
	}
	// Backoff: 0.5 s, 1 s, 2 s with jitter (at least half of each).
	if took := time.Since(started); took < 1750*time.Millisecond {
		t.Fatalf("retried without backing off: %s", took)
	}
}

func TestARunReportsOnce(t *testing.T) {
	p := newPortal(t)
	env := p.env(30 * time.Second)
	if err := ReportTo(env, true, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := ReportTo(env, false, []string{"late"}, nil, nil); !errors.Is(err, ErrAlreadyReported) {
		t.Fatalf("want ErrAlreadyReported, got %v", err)
	}
	if len(p.received) != 1 {
		t.Fatalf("sent %d reports", len(p.received))
	}
}

func TestConflictMeansTheResultIsThere(t *testing.T) {
	p := newPortal(t, 409)
	env := p.env(30 * time.Second)
	if err := ReportTo(env, true, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := ReportTo(env, true, nil, nil, nil); !errors.Is(err, ErrAlreadyReported) {
		t.Fatalf("want ErrAlreadyReported, got %v", err)
	}
}

func TestRefusalsAreNotRetried(t *testing.T) {
	p := newPortal(t, 401)
	err := ReportTo(p.env(30*time.Second), true, nil, nil, nil)
	var rejected *RejectedError
	if !errors.As(err, &rejected) || rejected.Status != 401 || len(p.received) != 1 {
		t.Fatalf("want one attempt refused with 401, got %v after %d", err, len(p.received))
	}
}

func TestRetriesStopAtTheDeadline(t *testing.T) {
	p := newPortal(t, 503, 503, 503, 503, 503, 503, 503, 503, 503, 503)
	started := time.Now()
	err := ReportTo(p.env(1500*time.Millisecond), true, nil, nil, nil)
	var rejected *RejectedError
	if !errors.As(err, &rejected) || rejected.Status != 0 || !strings.Contains(err.Error(), "HTTP 503") {
		t.Fatalf("want a deadline error naming the last answer, got %v", err)
	}
	if took := time.Since(started); took > 3*time.Second {
		t.Fatalf("kept trying past the deadline: %s", took)
	}
}

func TestASuccessCarriesNoErrors(t *testing.T) {
	p := newPortal(t)
	if err := ReportTo(p.env(time.Minute), true, []string{"x"}, nil, nil); err == nil {
		t.Fatal("a success with errors was sent")
	}
	if len(p.received) != 0 {
		t.Fatal("sent anyway")
	}
}

func TestProbeTimesStepsAndReportsTheFailures(t *testing.T) {
	p := newPortal(t)
	probe := NewProbeFor(p.env(time.Minute))
	if err := probe.Step("create\x00", func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	probe.Step("wait ready", func() error { return errors.New("timed out") })
	probe.StepWithin("slow", time.Millisecond, func() error { time.Sleep(20 * time.Millisecond); return nil })
	probe.RecordStep("node-0", true, 1500*time.Millisecond, "")
	probe.Metric("pods", 3)
	probe.Metric("broken", math.NaN())
	if probe.OK() {
		t.Fatal("OK after failed steps")
	}
	if err := probe.Report(); err != nil {
		t.Fatal(err)
	}
	got := p.received[0]
	names := []string{}
	for _, step := range got.Steps {
		names = append(names, step.Name+"="+strconv.FormatBool(step.OK))
	}
	if strings.Join(names, ",") != "create=true,wait ready=false,slow=false,node-0=true" {
		t.Fatalf("steps: %v", names)
	}
	if got.Steps[1].Error != "timed out" || !strings.HasPrefix(got.Steps[2].Error, "took ") || got.Steps[3].DurationMS != 1500 {
		t.Fatalf("steps: %+v", got.Steps)
	}
	if got.OK || len(got.Errors) != 2 || got.Errors[0] != "step wait ready failed: timed out" {
		t.Fatalf("errors: %v", got.Errors)
	}
	if got.Metrics["pods"] != 3 || got.Metrics["total_ms"] < 20 {
		t.Fatalf("metrics: %v", got.Metrics)
	}
	if _, ok := got.Metrics["broken"]; ok {
		t.Fatal("NaN was sent")
	}
}

func TestAPanicFailsItsStepOnceAndGoesOn(t *testing.T) {
	p := newPortal(t)
	probe := NewProbeFor(p.env(time.Minute))
	func() {
		defer func() {
			if recover() != "kaboom" {
				t.Fatal("the panic did not go on with its value")
			}
		}()
		defer probe.Finish()
		probe.Step("explode", func() error { panic("kaboom") })
	}()
	got := p.received[0]
	if got.OK || len(got.Errors) != 1 || got.Errors[0] != "step explode failed: panic: kaboom" {
		t.Fatalf("report: %+v", got)
	}
}

// TestLivePortal reports to a real portal for a real run: tests/probe_sdk/test_go_sdk.py
// runs it with the run's env and checks what the portal stored.
func TestLivePortal(t *testing.T) {
	if os.Getenv("KPCLIENT_LIVE_TEST") == "" {
		t.Skip("set by tests/probe_sdk/test_go_sdk.py with a real run's env")
	}
	reset()
	probe, err := NewProbe()
	if err != nil {
		t.Fatal(err)
	}
	probe.Step("connect", func() error { return nil })
	probe.Step("write", func() error { return errors.New("quota exceeded") })
	probe.Metric("objects", 2)
	if err := probe.Report(); err != nil {
		t.Fatal(err)
	}
	if err := ReportSuccess(); !errors.Is(err, ErrAlreadyReported) {
		t.Fatalf("a second report: %v", err)
	}
}
