//go:build !linux

package spool

func onTmpfs(string) bool { return false }
