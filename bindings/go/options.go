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
		e.Message = fmt.Sprintf("%s is set, but libsnapshotter %s cannot use it (%s)", field, Version(), msg)
	} else {
		e.Message = field + ": " + msg
	}
	return e
}

// seconds rounds up, so a positive duration never becomes 0.
func seconds(d time.Duration) int64 {
	if d <= 0 {
		return int64(d / time.Second)
	}
	return int64((d + time.Second - 1) / time.Second)
}

// gcSettings are the library's GC options a GC value maps to, as
// d7y.io/snapshotter reads it: a zero or out-of-range value is the default
// (not set), a low threshold above the high one too.
type gcSettings struct {
	interval, high, low, batch, retention *int64
}

func gcFrom(g GC) gcSettings {
	var s gcSettings
	set := func(v int64) *int64 { return &v }
	if g.Interval != nil && *g.Interval > 0 {
		s.interval = set(seconds(*g.Interval))
	}
	inRange := func(p *float64) bool { return p != nil && *p > 0 && *p <= 100 }
	high := 90.0
	if inRange(g.DiskHighThresholdPercent) {
		high = *g.DiskHighThresholdPercent
		s.high = set(int64(math.Round(high)))
	}
	if inRange(g.DiskLowThresholdPercent) && *g.DiskLowThresholdPercent <= high {
		s.low = set(int64(math.Round(*g.DiskLowThresholdPercent)))
	}
	if g.BatchSize != nil && *g.BatchSize > 0 {
		s.batch = set(int64(*g.BatchSize))
	}
	if g.MinRetentionPeriod != nil && *g.MinRetentionPeriod > 0 {
		s.retention = set(seconds(*g.MinRetentionPeriod))
	}
	return s
}

// setStore sets the settings fixed at open, plus the registry and
// content settings.
func (o *cOptions) setStore(c *Config, x *extras) {
	if c.SnapshotConcurrency != nil {
		o.setInt("SnapshotConcurrency", C.SNAPSHOTTER_OPT_SNAPSHOT_CONCURRENCY, int64(*c.SnapshotConcurrency))
	}
	if c.RestoreConcurrency != nil {
		o.setInt("RestoreConcurrency", C.SNAPSHOTTER_OPT_RESTORE_CONCURRENCY, int64(*c.RestoreConcurrency))
	}
	if x.storeGroup != nil {
		o.setInt("WithStoreGroup", C.SNAPSHOTTER_OPT_STORE_GROUP, int64(*x.storeGroup))
	}
	if x.durableRestore {
		o.setInt("WithDurableRestore", C.SNAPSHOTTER_OPT_DURABLE_RESTORE, 1)
	}
	if x.maxConfigBytes != nil {
		o.setInt("WithMaxConfigBytes", C.SNAPSHOTTER_OPT_MAX_CONFIG_BYTES, *x.maxConfigBytes)
	}
	if x.recordFormat != nil {
		o.setInt("WithRecordFormat", C.SNAPSHOTTER_OPT_RECORD_FORMAT, int64(*x.recordFormat))
	}
	g := gcFrom(c.GC)
	if x.noBackgroundGC {
		o.setInt("WithoutBackgroundGC", C.SNAPSHOTTER_OPT_GC_INTERVAL_SECONDS, 0)
	} else if g.interval != nil {
		o.setInt("GC.Interval", C.SNAPSHOTTER_OPT_GC_INTERVAL_SECONDS, *g.interval)
	}
	if g.high != nil {
		o.setInt("GC.DiskHighThresholdPercent", C.SNAPSHOTTER_OPT_GC_HIGH_WATERMARK_PERCENT, *g.high)
	}
	if g.low != nil {
		o.setInt("GC.DiskLowThresholdPercent", C.SNAPSHOTTER_OPT_GC_LOW_WATERMARK_PERCENT, *g.low)
	}
	if g.batch != nil {
		o.setInt("GC.BatchSize", C.SNAPSHOTTER_OPT_GC_BATCH_SIZE, *g.batch)
	}
	if x.minRetention != nil {
		if *x.minRetention < 0 {
			o.fail(fmt.Sprintf("WithGCMinRetention %v is negative", *x.minRetention))
			return
		}
		o.setInt("WithGCMinRetention", C.SNAPSHOTTER_OPT_GC_MIN_RETENTION_SECONDS, seconds(*x.minRetention))
	} else if g.retention != nil {
		o.setInt("GC.MinRetentionPeriod", C.SNAPSHOTTER_OPT_GC_MIN_RETENTION_SECONDS, *g.retention)
	}
	if x.maxStoreBytes != nil {
		o.setInt("WithMaxStoreBytes", C.SNAPSHOTTER_OPT_GC_MAX_STORE_BYTES, *x.maxStoreBytes)
	}
	o.setRemote(c, &x.remote)
}

func (o *cOptions) fail(msg string) {
	if o.err == nil {
		o.err = &Error{Code: CodeInvalid, Op: "options", Message: msg}
	}
}

// setRemote sets the registry and content settings.
func (o *cOptions) setRemote(c *Config, x *remoteExtras) {
	o.setRegistry(c.Metadata.Registry, x.caFile)
	o.setContent(c.Content, c.Dragonfly, x)
}

func (o *cOptions) setRegistry(r oci.Registry, caFile string) {
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
	if caFile != "" {
		o.setString("WithRegistryCAFile", C.SNAPSHOTTER_OPT_REGISTRY_CA_FILE, caFile)
	}
}

// setContent hands the endpoints to the library as given: any Dragonfly
// target form, and an object storage endpoint with or without a scheme.
func (o *cOptions) setContent(p dragonfly.ContentProvider, d dragonfly.Dragonfly, x *remoteExtras) {
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
	if x.sessionToken != "" {
		o.setString("WithContentSessionToken", C.SNAPSHOTTER_OPT_CONTENT_SESSION_TOKEN, x.sessionToken)
	}
	if d.Endpoint != "" {
		o.setString("Dragonfly.Endpoint", C.SNAPSHOTTER_OPT_DRAGONFLY_ENDPOINT, d.Endpoint)
	}
	df := x.dragonfly
	if df.Fallback {
		o.setInt("DragonflyOptions.Fallback", C.SNAPSHOTTER_OPT_DRAGONFLY_FALLBACK, 1)
	}
	if df.Replicas != 0 {
		if df.Replicas > math.MaxInt64 {
			o.fail(fmt.Sprintf("DragonflyOptions.Replicas %d is out of range", df.Replicas))
			return
		}
		o.setInt("DragonflyOptions.Replicas", C.SNAPSHOTTER_OPT_DRAGONFLY_REPLICAS, int64(df.Replicas))
	}
	if df.TTL < 0 {
		o.fail(fmt.Sprintf("DragonflyOptions.TTL %v is negative", df.TTL))
		return
	}
	if df.TTL != 0 {
		o.setInt("DragonflyOptions.TTL", C.SNAPSHOTTER_OPT_DRAGONFLY_TTL_SECONDS, seconds(df.TTL))
	}
}
