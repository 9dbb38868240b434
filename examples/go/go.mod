module github.com/libsnapshotter/snapshotter-go/examples

go 1.19

require github.com/libsnapshotter/snapshotter-go v0.0.0

replace github.com/libsnapshotter/snapshotter-go => ../../bindings/go
