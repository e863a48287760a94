package kpclient

import (
	"fmt"
	"os"
	"time"
)

// Probe times named steps, records failures and metrics, and reports once:
//
//	probe, err := kpclient.NewProbe()
//	if err != nil { log.Fatal(err) }  // *EnvError: not started by KubeProbe
//	defer probe.Finish()               // reports; a panic fails the run, then goes on
//	probe.StepWithin("create pod", 30*time.Second, createPod)
//	probe.Metric("pods", 1)
type Probe struct {
	env     Env
	started time.Time
	steps   []Step
	errors  []string
	metrics map[string]float64
}

// NewProbe reads the env contract; an *EnvError names what is missing.
func NewProbe() (*Probe, error) {
	env, err := LoadEnv()
	if err != nil {
		return nil, err
	}
	return NewProbeFor(env), nil
}

// NewProbeFor is NewProbe with the env given.
func NewProbeFor(env Env) *Probe {
	return &Probe{env: env, started: time.Now(), metrics: map[string]float64{}}
}

// Env is the run's env contract (its cluster, deadline, ...).
func (p *Probe) Env() Env { return p.env }

// OK says whether nothing has failed so far.
func (p *Probe) OK() bool { return len(p.errors) == 0 }

// Metric records a number (latency, count, days left); the last value of a name wins.
func (p *Probe) Metric(name string, value float64) { p.metrics[name] = value }

// Fail records a failure that belongs to no step.
func (p *Probe) Fail(message string) { p.errors = append(p.errors, message) }

// RecordStep records a step timed elsewhere (e.g. one of many waited on together).
func (p *Probe) RecordStep(name string, ok bool, duration time.Duration, errorText string) {
	if !ok && errorText == "" {
		errorText = "failed"
	}
	p.steps = append(p.steps, Step{Name: name, OK: ok, DurationMS: float64(duration.Milliseconds()), Error: errorText})
	if !ok {
		p.errors = append(p.errors, fmt.Sprintf("step %s failed: %s", name, errorText))
	}
}

// Step runs fn as a timed step. Its error (or panic, which then goes on) fails the step
// and the run; it is returned so the probe can decide whether to go on.
func (p *Probe) Step(name string, fn func() error) error { return p.step(name, 0, fn) }

// StepWithin is Step that also fails when fn takes longer than threshold.
func (p *Probe) StepWithin(name string, threshold time.Duration, fn func() error) error {
	return p.step(name, threshold, fn)
}

func (p *Probe) step(name string, threshold time.Duration, fn func() error) (err error) {
	start := time.Now()
	finished := false
	defer func() {
		if finished {
			return
		}
		// fn panicked: record the failed step, then let the panic go on, marked so
		// that Finish does not record it twice.
		value := recover()
		if _, already := value.(recordedPanic); !already {
			p.RecordStep(name, false, time.Since(start), fmt.Sprintf("panic: %v", value))
			value = recordedPanic{value}
		}
		panic(value)
	}()
	err = fn()
	finished = true
	took := time.Since(start)
	switch {
	case err != nil:
		p.RecordStep(name, false, took, err.Error())
	case threshold > 0 && took > threshold:
		err = fmt.Errorf("took %d ms, over the %d ms threshold", took.Milliseconds(), threshold.Milliseconds())
		p.RecordStep(name, false, took, err.Error())
	default:
		p.RecordStep(name, true, took, "")
	}
	return err
}

// Report sends the result: success when nothing failed, else the failures. It adds
// the metric total_ms unless set.
func (p *Probe) Report() error {
	if _, set := p.metrics["total_ms"]; !set {
		p.metrics["total_ms"] = float64(time.Since(p.started).Milliseconds())
	}
	return ReportTo(p.env, p.OK(), p.errors, p.steps, p.metrics)
}

// recordedPanic carries a panic a step has already recorded.
type recordedPanic struct{ value any }

func (r recordedPanic) Error() string { return fmt.Sprint(r.value) }

// Finish is meant for defer: it reports, including a panic as a failure (and then
// panics on), and exits with status 1 when the report could not be delivered.
func (p *Probe) Finish() {
	recovered := recover()
	if inner, ok := recovered.(recordedPanic); ok {
		recovered = inner.value
	} else if recovered != nil {
		p.Fail(fmt.Sprintf("panic: %v", recovered))
	}
	if err := p.Report(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if recovered == nil {
			os.Exit(1)
		}
	}
	if recovered != nil {
		panic(recovered)
	}
}
