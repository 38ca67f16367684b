package consoleapi

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

func registryError(err error) error {
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeRegistryError, Message: "the registry failed; try again", Err: err}
}

// GET /registry/apps
func (a *API) listApps(c *gin.Context) error {
	ctx, cancel := a.ctx(c)
	defer cancel()
	apps, err := a.opts.Registry.Apps(ctx)
	if err != nil {
		return registryError(err)
	}
	if apps == nil {
		apps = []App{}
	}
	c.JSON(http.StatusOK, gin.H{"apps": apps})
	return nil
}

// GET /registry/apps/:name
func (a *API) getApp(c *gin.Context) error {
	ctx, cancel := a.ctx(c)
	defer cancel()
	apps, err := a.opts.Registry.Apps(ctx)
	if err != nil {
		return registryError(err)
	}
	name := c.Param("name")
	for _, app := range apps {
		if app.Name == name {
			c.JSON(http.StatusOK, app)
			return nil
		}
	}
	return errorf(http.StatusNotFound, CodeAppNotFound, "no app is named %q", truncate(name, 64))
}

// GET /registry/topics
func (a *API) listTopics(c *gin.Context) error {
	ctx, cancel := a.ctx(c)
	defer cancel()
	topics, err := a.opts.Registry.Topics(ctx)
	if err != nil {
		return registryError(err)
	}
	if topics == nil {
		topics = []Topic{}
	}
	c.JSON(http.StatusOK, gin.H{"topics": topics})
	return nil
}

// GET /registry/subscriptions?topic=
func (a *API) listSubscriptions(c *gin.Context) error {
	q := c.Request.URL.Query()
	topic := ""
	if t := q.Get("topic"); t != "" {
		var err error
		if topic, err = NormalizeTopic(t); err != nil {
			return err
		}
	}
	ctx, cancel := a.ctx(c)
	defer cancel()
	subs, err := a.opts.Registry.Subscriptions(ctx, topic)
	if err != nil {
		return registryError(err)
	}
	if subs == nil {
		subs = []Subscription{}
	}
	c.JSON(http.StatusOK, gin.H{"subscriptions": subs})
	return nil
}
