package spool

const crashChildEnv = "SPOOL_CRASH_CHILD_DIR"

func runCrashChild(dir string) int { return 0 }
