package apierr

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"
)

var (
	errGone  = errors.New("gone")
	errSmall = errors.New("small")
)

func TestTableMap(t *testing.T) {
	tab := Table{
		{Is: errGone, When: func(err error) bool { return errors.Is(err, errSmall) }, Status: 413, Code: "SMALL_GONE", Message: "m1"},
		{Is: errGone, Status: 404, Code: "GONE", RetryAfter: time.Second, Message: "m2"},
		{Is: errSmall, Status: 400, Code: "SMALL"}, // its own text
	}
	e := tab.Map(fmt.Errorf("a: %w", errGone))
	require.Equal(t, &Error{Status: 404, Code: "GONE", Message: "m2", RetryAfter: time.Second, Err: e.Err}, e)
	require.ErrorIs(t, e, errGone, "the cause is kept")
	e = tab.Map(errors.Join(errGone, errSmall))
	require.Equal(t, "SMALL_GONE", e.Code, "When picks the first rule")
	e = tab.Map(fmt.Errorf("b: %w", errSmall))
	require.Equal(t, "b: small", e.Message)
	require.Nil(t, tab.Map(errors.New("other")))

	own := &Error{Status: 409, Code: "OWN", Message: "mine", Err: errGone}
	require.Same(t, own, tab.Answer(fmt.Errorf("wrapped: %w", own)), "an *Error answers for itself, even over a rule its cause matches")
	require.Equal(t, "GONE", tab.Answer(errGone).Code)
	e = tab.Answer(errors.New("secret"))
	require.Equal(t, &Error{Status: 500, Code: CodeInternal, Message: "internal error", Err: e.Err}, e)
}

func TestWriter(t *testing.T) {
	write := func(w *Writer, err error, results any, before func(c *gin.Context)) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(rec)
		c.Request = httptest.NewRequest(http.MethodGet, "/x", nil)
		if before != nil {
			before(c)
		}
		w.WriteResults(c, err, results)
		return rec
	}
	var counted []string
	w := &Writer{API: "test", Count: func(_ *gin.Context, e *Error) { counted = append(counted, e.Code) },
		Map: func(_ *gin.Context, err error) *Error {
			if errors.Is(err, errGone) {
				return &Error{Status: 503, Code: "GONE", Message: "later", RetryAfter: 1500 * time.Millisecond}
			}
			return nil
		}}

	rec := write(w, errGone, nil, nil)
	require.Equal(t, 503, rec.Code)
	require.Equal(t, "2", rec.Header().Get("Retry-After"), "whole seconds, rounded up")
	require.JSONEq(t, `{"error":{"code":"GONE","message":"later"}}`, rec.Body.String())

	rec = write(w, errors.New("secret detail"), nil, nil)
	require.Equal(t, 500, rec.Code)
	require.JSONEq(t, `{"error":{"code":"INTERNAL","message":"internal error"}}`, rec.Body.String(), "a 500 hides its cause")

	rec = write(w, &Error{Status: 400, Code: "BAD", Message: "where", Position: &Span{Start: 1, End: 3}}, []int{7}, nil)
	var body map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	require.Equal(t, map[string]any{"error": map[string]any{"code": "BAD", "message": "where", "position": map[string]any{"start": 1.0, "end": 3.0}},
		"results": []any{7.0}}, body)

	rec = write(w, Errorf(401, CodeUnauthenticated, "who"), nil, nil)
	require.Equal(t, `Bearer realm="pulsar-sidecar"`, rec.Header().Get("WWW-Authenticate"))
	rec = write(w, Errorf(401, CodeUnauthenticated, "who"), nil, func(c *gin.Context) { c.Header("WWW-Authenticate", "Bearer realm=\"own\"") })
	require.Equal(t, `Bearer realm="own"`, rec.Header().Get("WWW-Authenticate"), "an API's own challenge stays")

	require.Equal(t, []string{"GONE", CodeInternal, "BAD", CodeUnauthenticated, CodeUnauthenticated}, counted, "every answer is counted")
}

func TestMarkdown(t *testing.T) {
	md := Markdown("# Errors\n", Catalogue{API: "A", Intro: "i", Codes: []Code{C(400, "X", "a | b", "fix\nit")}})
	require.Equal(t, "# Errors\n\n## A\n\ni\n\n| status | code | when | what to do |\n|---|---|---|---|\n| 400 | `X` | a \\| b | fix it |\n", md)
}
