module github.com/libsnapshotter/snapshotter-go

go 1.19
