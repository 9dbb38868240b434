package snapshotter

/*
#include <stdlib.h>
#include <snapshotter.h>
*/
import "C"

import (
	"fmt"
	"math"
	"time"
	"unsafe"

	"github.com/libsnapshotter/snapshotter-go/pkg/dragonfly"
	"github.com/libsnapshotter/snapshotter-go/pkg/oci"
)

// cOptions is a snapshotter_options_t being filled from a Config. The
// first failing set is kept, with the Config field it came from, and
// every later set is skipped.
type cOptions struct {
	p   *C.snapshotter_options_t
	err error
}

func newCOptions() (*cOptions, error) {
	p := C.snapshotter_options_new()
	if p == nil {
		return nil, &Error{Code: CodeOutOfMemory, Op: "options", Message: "snapshotter_options_new: out of memory"}
	}
	return &cOptions{p: p}, nil
}

func (o *cOptions) free() {
	C.snapshotter_options_free(o.p)
	o.p = nil
}

func (o *cOptions) setInt(field string, option C.int, v int64) {
	if o.err != nil {
		return
	}
	rc, msg := callC(func() C.int { return C.snapshotter_options_set_int(o.p, option, C.int64_t(v)) })
	if rc != 0 {
		o.err = optionError(field, rc, msg)
	}
}

func (o *cOptions) setString(field string, option C.int, v string) {
	if o.err != nil {
		return
	}
	cs := C.CString(v)
	defer C.free(unsafe.Pointer(cs))
	rc, msg := callC(func() C.int { return C.snapshotter_options_set_string(o.p, option, cs) })
	if rc != 0 {
		o.err = optionError(field, rc, msg)
	}
}

func optionError(field string, rc C.int, msg string) error {
	e := &Error{Code: Code(rc), Op: "options", Message: msg}
	if e.Code == CodeUnsupported {
		e.Message = fmt.Sprintf("%s is set, but libsnapshotter %s has no content transport (%s); leave Content and Dragonfly empty", field, Version(), msg)
	} else {
		e.Message = field + ": " + msg
	}
	return e
}

// seconds rounds up, so a positive duration never becomes 0 (which turns
// the collector off or the retention away).
func seconds(d time.Duration) int64 {
	if d <= 0 {
		return int64(d / time.Second)
	}
	return int64((d + time.Second - 1) / time.Second)
}

func percent(v float64) int64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return -1 // refused by the library, naming the option
	}
	return int64(math.Round(v))
}

// openOptions are the settings fixed at open, plus the registry and
// content settings.
func (o *cOptions) setStore(c *Config) {
	if c.SnapshotConcurrency != nil {
		o.setInt("SnapshotConcurrency", C.SNAPSHOTTER_OPT_SNAPSHOT_CONCURRENCY, int64(*c.SnapshotConcurrency))
	}
	if c.RestoreConcurrency != nil {
		o.setInt("RestoreConcurrency", C.SNAPSHOTTER_OPT_RESTORE_CONCURRENCY, int64(*c.RestoreConcurrency))
	}
	if c.storeGroup != nil {
		o.setInt("WithStoreGroup", C.SNAPSHOTTER_OPT_STORE_GROUP, int64(*c.storeGroup))
	}
	if c.durableRestore {
		o.setInt("WithDurableRestore", C.SNAPSHOTTER_OPT_DURABLE_RESTORE, 1)
	}
	if c.maxConfigBytes != nil {
		o.setInt("WithMaxConfigBytes", C.SNAPSHOTTER_OPT_MAX_CONFIG_BYTES, *c.maxConfigBytes)
	}
	g := c.GC
	if g.Interval != nil {
		o.setInt("GC.Interval", C.SNAPSHOTTER_OPT_GC_INTERVAL_SECONDS, seconds(*g.Interval))
	}
	if g.DiskHighThresholdPercent != nil {
		o.setInt("GC.DiskHighThresholdPercent", C.SNAPSHOTTER_OPT_GC_HIGH_WATERMARK_PERCENT, percent(*g.DiskHighThresholdPercent))
	}
	if g.DiskLowThresholdPercent != nil {
		o.setInt("GC.DiskLowThresholdPercent", C.SNAPSHOTTER_OPT_GC_LOW_WATERMARK_PERCENT, percent(*g.DiskLowThresholdPercent))
	}
	if g.BatchSize != nil {
		o.setInt("GC.BatchSize", C.SNAPSHOTTER_OPT_GC_BATCH_SIZE, int64(*g.BatchSize))
	}
	if g.MinRetentionPeriod != nil {
		o.setInt("GC.MinRetentionPeriod", C.SNAPSHOTTER_OPT_GC_MIN_RETENTION_SECONDS, seconds(*g.MinRetentionPeriod))
	}
	if g.MaxStoreBytes != nil {
		o.setInt("GC.MaxStoreBytes", C.SNAPSHOTTER_OPT_GC_MAX_STORE_BYTES, *g.MaxStoreBytes)
	}
	o.setRemote(c)
}

// setRemote sets what snapshotter_reconfigure changes: the registry, and
// the content transport (refused by this library version when non-empty:
// never dropped silently).
func (o *cOptions) setRemote(c *Config) {
	o.setRegistry(c.Metadata.Registry)
	o.setContent(c.Content, c.Dragonfly)
}

func (o *cOptions) setRegistry(r oci.Registry) {
	if r.Endpoint != "" {
		o.setString("Metadata.Registry.Endpoint", C.SNAPSHOTTER_OPT_REGISTRY_ENDPOINT, r.Endpoint)
	}
	if r.Namespace != "" {
		o.setString("Metadata.Registry.Namespace", C.SNAPSHOTTER_OPT_REGISTRY_NAMESPACE, r.Namespace)
	}
	if r.Username != "" {
		o.setString("Metadata.Registry.Username", C.SNAPSHOTTER_OPT_REGISTRY_USERNAME, r.Username)
	}
	if r.Password != "" {
		o.setString("Metadata.Registry.Password", C.SNAPSHOTTER_OPT_REGISTRY_PASSWORD, r.Password)
	}
	if r.Insecure {
		o.setInt("Metadata.Registry.Insecure", C.SNAPSHOTTER_OPT_REGISTRY_INSECURE, 1)
	}
	if r.CAFile != "" {
		o.setString("Metadata.Registry.CAFile", C.SNAPSHOTTER_OPT_REGISTRY_CA_FILE, r.CAFile)
	}
}

func (o *cOptions) setContent(p dragonfly.ContentProvider, d dragonfly.Dragonfly) {
	if p.Provider != "" || p.Bucket != "" {
		// The library names object storage by URL: <provider>://<bucket>.
		o.setString("Content (Provider, Bucket)", C.SNAPSHOTTER_OPT_CONTENT_URL, p.Provider+"://"+p.Bucket)
	}
	if p.Endpoint != "" {
		o.setString("Content.Endpoint", C.SNAPSHOTTER_OPT_CONTENT_ENDPOINT, p.Endpoint)
	}
	if p.Region != "" {
		o.setString("Content.Region", C.SNAPSHOTTER_OPT_CONTENT_REGION, p.Region)
	}
	if p.AccessKeyID != "" {
		o.setString("Content.AccessKeyID", C.SNAPSHOTTER_OPT_CONTENT_ACCESS_KEY_ID, p.AccessKeyID)
	}
	if p.AccessKeySecret != "" {
		o.setString("Content.AccessKeySecret", C.SNAPSHOTTER_OPT_CONTENT_SECRET_ACCESS_KEY, p.AccessKeySecret)
	}
	if p.SessionToken != "" {
		o.setString("Content.SessionToken", C.SNAPSHOTTER_OPT_CONTENT_SESSION_TOKEN, p.SessionToken)
	}
	if d.Endpoint != "" {
		o.setString("Dragonfly.Endpoint", C.SNAPSHOTTER_OPT_DRAGONFLY_ENDPOINT, d.Endpoint)
	}
	if d.Fallback {
		o.setInt("Dragonfly.Fallback", C.SNAPSHOTTER_OPT_DRAGONFLY_FALLBACK, 1)
	}
	if d.Replicas != 0 {
		if d.Replicas > math.MaxInt64 {
			o.err = &Error{Code: CodeInvalid, Op: "options", Message: fmt.Sprintf("Dragonfly.Replicas %d is out of range", d.Replicas)}
			return
		}
		o.setInt("Dragonfly.Replicas", C.SNAPSHOTTER_OPT_DRAGONFLY_REPLICAS, int64(d.Replicas))
	}
	if d.TTL < 0 {
		o.err = &Error{Code: CodeInvalid, Op: "options", Message: fmt.Sprintf("Dragonfly.TTL %v is negative", d.TTL)}
		return
	}
	if d.TTL != 0 {
		o.setInt("Dragonfly.TTL", C.SNAPSHOTTER_OPT_DRAGONFLY_TTL_SECONDS, seconds(d.TTL))
	}
}
