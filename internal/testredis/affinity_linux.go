package testredis

import "golang.org/x/sys/unix"

// setAffinity restricts process pid to cpus.
func setAffinity(pid int, cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	return unix.SchedSetaffinity(pid, &set)
}
