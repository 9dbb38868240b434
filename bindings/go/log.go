package snapshotter

/*
#include <snapshotter.h>
#include "shim.h"
*/
import "C"

import "sync"

// LogLevel is the severity of a library log message.
type LogLevel int

// The log levels of snapshotter.h, most severe first.
const (
	LogError LogLevel = C.SNAPSHOTTER_LOG_ERROR
	LogWarn  LogLevel = C.SNAPSHOTTER_LOG_WARN
	LogInfo  LogLevel = C.SNAPSHOTTER_LOG_INFO
	LogDebug LogLevel = C.SNAPSHOTTER_LOG_DEBUG
)

func (l LogLevel) String() string {
	switch l {
	case LogError:
		return "error"
	case LogWarn:
		return "warn"
	case LogInfo:
		return "info"
	case LogDebug:
		return "debug"
	}
	return "level(?)"
}

var (
	logMu sync.RWMutex
	logFn func(LogLevel, string)
)

// SetLogFunc installs fn as the process-wide receiver of the library's
// log messages at or above maxLevel's severity (nil fn removes it; the
// library is silent by default and never logs secrets). fn runs on
// library threads, possibly concurrently, and should return quickly.
func SetLogFunc(maxLevel LogLevel, fn func(level LogLevel, message string)) error {
	logMu.Lock()
	defer logMu.Unlock()
	enable := C.int(0)
	if fn != nil {
		enable = 1
	}
	rc, msg := callC(func() C.int { return C.sgo_set_log_callback(enable, C.int(maxLevel)) })
	if rc != 0 {
		return newError("set log callback", rc, msg)
	}
	logFn = fn
	return nil
}

//export snapshotterGoLog
func snapshotterGoLog(level C.int, message *C.char) {
	logMu.RLock()
	fn := logFn
	logMu.RUnlock()
	if fn == nil {
		return
	}
	// A panic cannot unwind through the library's thread: drop it.
	defer func() { _ = recover() }()
	fn(LogLevel(level), C.GoString(message))
}
