package consoleapi

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
)

// Authorizer decides who may use the console. The app plugs in its bearer
// token apps: an app with the console permission is let in.
//
// AuthorizeConsole is called once per request, from many goroutines at
// once. It returns the caller, or an error wrapping ErrUnauthenticated (no
// or unknown credentials: 401) or ErrForbidden (a known caller without the
// console permission: 403). Any other error is a 500 and is logged.
type Authorizer interface {
	AuthorizeConsole(r *http.Request) (Principal, error)
}

// Principal is the caller the Authorizer recognised.
type Principal struct {
	App  string // the app's name; "" for the open dev mode
	Role Role   // what it may do (ops.go); "" is a viewer
}

// AuthorizerFunc adapts a function to Authorizer.
type AuthorizerFunc func(r *http.Request) (Principal, error)

// AuthorizeConsole calls f.
func (f AuthorizerFunc) AuthorizeConsole(r *http.Request) (Principal, error) { return f(r) }

// Errors an Authorizer returns.
var (
	ErrUnauthenticated = errors.New("consoleapi: unauthenticated")
	ErrForbidden       = errors.New("consoleapi: forbidden")
)

// PrincipalFrom returns the caller of a request the console let in.
func PrincipalFrom(c *gin.Context) (Principal, bool) {
	v, ok := c.Get("consoleapi.principal")
	if !ok {
		return Principal{}, false
	}
	p, ok := v.(Principal)
	return p, ok
}

// authenticate is the middleware in front of every console route but the
// OpenAPI document. Without an Authorizer it denies everything, unless
// Options.Open (the embedded dev mode on loopback) lets everyone in.
func (a *API) authenticate(c *gin.Context) {
	if a.opts.Open {
		c.Set("consoleapi.principal", Principal{})
		c.Next()
		return
	}
	if a.opts.Authorizer == nil {
		a.writeError(c, errorf(http.StatusUnauthorized, CodeUnauthenticated,
			"the console has no authorizer configured: it refuses every request"))
		return
	}
	p, err := a.opts.Authorizer.AuthorizeConsole(c.Request)
	switch {
	case err == nil:
		c.Set("consoleapi.principal", p)
		c.Next()
	case errors.Is(err, ErrUnauthenticated):
		c.Header("WWW-Authenticate", `Bearer realm="pulsar-sidecar console"`)
		a.writeError(c, &Error{Status: http.StatusUnauthorized, Code: CodeUnauthenticated,
			Message: "send Authorization: Bearer <token> of an app with the console permission", Err: err})
	case errors.Is(err, ErrForbidden):
		a.writeError(c, &Error{Status: http.StatusForbidden, Code: CodeForbidden,
			Message: "this app does not have the console permission", Err: err})
	default:
		a.writeError(c, &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error", Err: err})
	}
}
