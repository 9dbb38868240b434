# libsnapshotter: build, install and test the C library.
#   make lib                      release libsnapshotter.so (Swift runtime linked in)
#   make lib DRAGONFLY=0          the same without the Dragonfly transport (no gRPC
#                                 stack: about 9 MB instead of 81 MB stripped);
#                                 built in .build/slim, applies to every target
#   make install PREFIX=/opt/x    library, header and pkg-config file
#   make test-c                   C test suite against an installed copy
#   make example-c                the C example

PREFIX ?= /usr/local
SWIFT ?= swift
# The one version: the header's.
VERSION := $(shell sed -n 's/^\#define SNAPSHOTTER_VERSION_STRING "\(.*\)"/\1/p' include/snapshotter.h)
SOMAJOR := 0
LIBDIR := $(DESTDIR)$(PREFIX)/lib
INCDIR := $(DESTDIR)$(PREFIX)/include
PCDIR := $(LIBDIR)/pkgconfig
DRAGONFLY ?= 1
ifeq ($(DRAGONFLY),0)
SCRATCH := .build/slim
BUILDENV := SNAPSHOTTER_DRAGONFLY=0
else
SCRATCH := .build
BUILDENV :=
endif
RELEASE := $(SCRATCH)/release
TESTPREFIX := $(CURDIR)/$(SCRATCH)/test-prefix

.PHONY: lib install uninstall test-c example-c clean-c

lib:
	$(BUILDENV) $(SWIFT) build -c release --product snapshotter -Xswiftc -static-stdlib --scratch-path $(SCRATCH)

install: lib
	install -d $(LIBDIR) $(INCDIR) $(PCDIR)
	install -m 0755 $(RELEASE)/libsnapshotter.so $(LIBDIR)/libsnapshotter.so.$(VERSION)
	strip --strip-unneeded $(LIBDIR)/libsnapshotter.so.$(VERSION)
	ln -sf libsnapshotter.so.$(VERSION) $(LIBDIR)/libsnapshotter.so.$(SOMAJOR)
	ln -sf libsnapshotter.so.$(SOMAJOR) $(LIBDIR)/libsnapshotter.so
	install -m 0644 include/snapshotter.h $(INCDIR)/snapshotter.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' pkgconfig/snapshotter.pc.in > $(PCDIR)/snapshotter.pc

uninstall:
	rm -f $(LIBDIR)/libsnapshotter.so* $(INCDIR)/snapshotter.h $(PCDIR)/snapshotter.pc

# The C tests build against an installed copy in a private prefix, through
# pkg-config only, as a user's program would.
test-c:
	$(MAKE) install PREFIX=$(TESTPREFIX)
	PREFIX=$(TESTPREFIX) bash Tests/c/run.sh

example-c:
	$(MAKE) install PREFIX=$(TESTPREFIX)
	PKG_CONFIG_PATH=$(TESTPREFIX)/lib/pkgconfig gcc -std=c11 -Wall -Wextra -Werror -O2 -o .build/snapshot-example \
		examples/c/snapshot_example.c $$(PKG_CONFIG_PATH=$(TESTPREFIX)/lib/pkgconfig pkg-config --cflags --libs snapshotter) -lpthread
	.build/snapshot-example

clean-c:
	rm -rf $(TESTPREFIX) .build/c-tests
