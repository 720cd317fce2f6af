// Package initerror holds what the function needs from the Lambda Runtime
// API beyond aws-lambda-go: reporting an init error.
package initerror

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"
)

// Report tells Lambda that the function cannot start, so the
// failure shows as an init error with its reason rather than a bare exit.
// Outside Lambda (no AWS_LAMBDA_RUNTIME_API) it does nothing.
func Report(errorType string, cause error) error {
	api := os.Getenv("AWS_LAMBDA_RUNTIME_API")
	if api == "" {
		return nil
	}
	body, err := json.Marshal(map[string]any{"errorMessage": cause.Error(), "errorType": errorType, "stackTrace": []string{}})
	if err != nil {
		return fmt.Errorf("encode init error: %w", err)
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+api+"/2018-06-01/runtime/init/error", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("init error request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Lambda-Runtime-Function-Error-Type", errorType)
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("post init error: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post init error: runtime API answered %s", resp.Status)
	}
	return nil
}
