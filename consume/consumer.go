package consume

import "strings"

// name sets the caller's worker name from a request body's consumer field
// ("" keeps none). A name is 1 to MaxConsumerNameBytes bytes of printable
// ASCII without surrounding spaces: it is stored in trace events and shown
// by the console, so it cannot carry control characters.
func (c *Caller) name(consumer string) error {
	if consumer == "" {
		return nil
	}
	if len(consumer) > MaxConsumerNameBytes || strings.TrimSpace(consumer) != consumer || !printableASCII(consumer) {
		return badRequest(CodeInvalidConsumer, "consumer %q: want 1 to %d bytes of printable ASCII without surrounding spaces (a worker's name, e.g. host-1/php-fpm-42)",
			clip(consumer, 40), MaxConsumerNameBytes)
	}
	c.Consumer = consumer
	return nil
}

// consumer is the name trace events give the caller: the worker's, or the
// app's when the request named none.
func (c Caller) consumer() string {
	if c.Consumer != "" {
		return c.Consumer
	}
	return c.App
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
