package gateway

import (
	"net/http"
	"strconv"
	"time"

	"github.com/keygate/keygate/relay"
)

// StatusClientClosed is the status logged for a request whose client went
// away before the answer (nginx's 499); nobody receives it.
const StatusClientClosed = relay.StatusClientClosed

// apiError is the OpenAI-style error body of /v1 and auth failures.
type apiError struct {
	Error apiErrorBody `json:"error"`
}

type apiErrorBody struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Code    int    `json:"code"`
}

// writeAPIError writes an OpenAI-style JSON error.
func writeAPIError(w http.ResponseWriter, code int, typ, msg string) {
	writeJSON(w, code, apiError{Error: apiErrorBody{Message: msg, Type: typ, Code: code}})
}

// runError is /run's error body: {"error": "<what is wrong>"}.
type runError struct {
	Error string `json:"error"`
}

// retryAfterSeconds renders a wait as whole seconds, rounded up, at least 1.
func retryAfterSeconds(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}
