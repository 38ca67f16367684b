//go:build !linux

package testredis

import "errors"

func setAffinity(int, []int) error {
	return errors.New("testredis: " + CPUsEnv + " needs Linux")
}
