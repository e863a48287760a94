// Command khcheck is a Kuberhealthy check built on Kuberhealthy's own published Go
// check client (github.com/kuberhealthy/kuberhealthy/v3/pkg/checkclient), unmodified.
// The tests run it as the command of a `kuberhealthy` template to prove that Go-based
// Kuberhealthy checks report to KubeProbe unchanged.
//
// KHCHECK_RESULT=success reports success; anything else reports a failure with the
// messages in KHCHECK_ERRORS (separated by "|").
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/kuberhealthy/kuberhealthy/v3/pkg/checkclient"
)

func main() {
	var err error
	if os.Getenv("KHCHECK_RESULT") == "success" {
		err = checkclient.ReportSuccess()
	} else {
		err = checkclient.ReportFailure(strings.Split(os.Getenv("KHCHECK_ERRORS"), "|"))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "khcheck:", err)
		os.Exit(1)
	}
	fmt.Println("khcheck: reported")
}
