// Package lambdaruntime is the function's client of the Lambda Runtime API:
// the invocation loop (Serve) and the init error (ReportInitError).
package lambdaruntime

import (
	"fmt"
	"net/http"
	"os"
	"time"
)

// ReportInitError tells Lambda that the function cannot start, so the
// failure shows as an init error with its reason rather than a bare exit.
// Outside Lambda (no AWS_LAMBDA_RUNTIME_API) it does nothing.
func ReportInitError(errorType string, cause error) error {
	api := os.Getenv("AWS_LAMBDA_RUNTIME_API")
	if api == "" {
		return nil
	}
	c := &client{http: &http.Client{Timeout: 2 * time.Second}}
	body, err := errorBody(errorType, cause, nil)
	if err != nil {
		return err
	}
	if err := c.post(runtimeURL(api)+"init/error", body, errorType); err != nil {
		return fmt.Errorf("report the init error: %w", err)
	}
	return nil
}
