package minipulsar

import "github.com/apache/pulsar-client-go/pulsar/log"

// quietLogger silences the client in benchmarks.
type quietLogger struct{}

func (quietLogger) SubLogger(log.Fields) log.Logger         { return quietLogger{} }
func (quietLogger) WithFields(log.Fields) log.Entry         { return quietLogger{} }
func (quietLogger) WithField(string, interface{}) log.Entry { return quietLogger{} }
func (quietLogger) WithError(error) log.Entry               { return quietLogger{} }
func (quietLogger) Debug(...interface{})                    {}
func (quietLogger) Info(...interface{})                     {}
func (quietLogger) Warn(...interface{})                     {}
func (quietLogger) Error(...interface{})                    {}
func (quietLogger) Debugf(string, ...interface{})           {}
func (quietLogger) Infof(string, ...interface{})            {}
func (quietLogger) Warnf(string, ...interface{})            {}
func (quietLogger) Errorf(string, ...interface{})           {}
