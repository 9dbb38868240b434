# libsnapshotter: build, install and test the C library.
#   make lib                      release libsnapshotter.so (Swift runtime linked in)
#   make install PREFIX=/opt/x    library, header, pkg-config file, and snapshotctl
#                                 (Swift runtime linked in) with its man page and
#                                 bash, zsh and fish completions
#   make test-c                   C test suite against an installed copy
#   make test-cli                 installed snapshotctl without the toolchain
#   make example-c                the C example
#   make wheel                    Python wheel, the library inside (.build/packages)
#   make deb                      Debian packages (.build/packages)

PREFIX ?= /usr/local
SWIFT ?= swift
# The one version: the header's.
VERSION := $(shell sed -n 's/^\#define SNAPSHOTTER_VERSION_STRING "\(.*\)"/\1/p' include/snapshotter.h)
SOMAJOR := 0
LIBDIR := $(DESTDIR)$(PREFIX)/lib
INCDIR := $(DESTDIR)$(PREFIX)/include
PCDIR := $(LIBDIR)/pkgconfig
BINDIR := $(DESTDIR)$(PREFIX)/bin
SHAREDIR := $(DESTDIR)$(PREFIX)/share
SCRATCH := .build
RELEASE := $(SCRATCH)/release
TESTPREFIX := $(CURDIR)/$(SCRATCH)/test-prefix

.PHONY: lib ctl man install uninstall test-c test-cli example-c clean-c

lib:
	$(SWIFT) build -c release --product snapshotter -Xswiftc -static-stdlib --scratch-path $(SCRATCH)

# The same flags as lib, so both share one build.
ctl:
	$(SWIFT) build -c release --product snapshotctl -Xswiftc -static-stdlib --scratch-path $(SCRATCH)

# swift-argument-parser's manual plugin, on a debug build (the command
# line is the same in every build; debug builds fastest).
MANPAGE := .build/plugins/GenerateManual/outputs/snapshotctl/snapshotctl.1
man:
	$(SWIFT) package --scratch-path .build plugin generate-manual --configuration debug

install: lib ctl man
	install -d $(LIBDIR) $(INCDIR) $(PCDIR) $(BINDIR) $(SHAREDIR)/man/man1 \
		$(SHAREDIR)/bash-completion/completions $(SHAREDIR)/zsh/site-functions $(SHAREDIR)/fish/vendor_completions.d
	install -m 0755 $(RELEASE)/libsnapshotter.so $(LIBDIR)/libsnapshotter.so.$(VERSION)
	strip --strip-unneeded $(LIBDIR)/libsnapshotter.so.$(VERSION)
	ln -sf libsnapshotter.so.$(VERSION) $(LIBDIR)/libsnapshotter.so.$(SOMAJOR)
	ln -sf libsnapshotter.so.$(SOMAJOR) $(LIBDIR)/libsnapshotter.so
	install -m 0644 include/snapshotter.h $(INCDIR)/snapshotter.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' pkgconfig/snapshotter.pc.in > $(PCDIR)/snapshotter.pc
	install -m 0755 $(RELEASE)/snapshotctl $(BINDIR)/snapshotctl
	strip $(BINDIR)/snapshotctl
	install -m 0644 $(MANPAGE) $(SHAREDIR)/man/man1/snapshotctl.1
	$(BINDIR)/snapshotctl --generate-completion-script bash > $(SHAREDIR)/bash-completion/completions/snapshotctl
	$(BINDIR)/snapshotctl --generate-completion-script zsh > $(SHAREDIR)/zsh/site-functions/_snapshotctl
	$(BINDIR)/snapshotctl --generate-completion-script fish > $(SHAREDIR)/fish/vendor_completions.d/snapshotctl.fish

uninstall:
	rm -f $(LIBDIR)/libsnapshotter.so* $(INCDIR)/snapshotter.h $(PCDIR)/snapshotter.pc $(BINDIR)/snapshotctl \
		$(SHAREDIR)/man/man1/snapshotctl.1 $(SHAREDIR)/bash-completion/completions/snapshotctl \
		$(SHAREDIR)/zsh/site-functions/_snapshotctl $(SHAREDIR)/fish/vendor_completions.d/snapshotctl.fish

# The C tests build against an installed copy in a private prefix, through
# pkg-config only, as a user's program would.
test-c:
	$(MAKE) install PREFIX=$(TESTPREFIX)
	PREFIX=$(TESTPREFIX) bash Tests/c/run.sh

test-cli:
	$(MAKE) install PREFIX=$(TESTPREFIX)
	PREFIX=$(TESTPREFIX) bash Tests/cli/run.sh

example-c:
	$(MAKE) install PREFIX=$(TESTPREFIX)
	PKG_CONFIG_PATH=$(TESTPREFIX)/lib/pkgconfig gcc -std=c11 -Wall -Wextra -Werror -O2 -o .build/snapshot-example \
		examples/c/snapshot_example.c $$(PKG_CONFIG_PATH=$(TESTPREFIX)/lib/pkgconfig pkg-config --cflags --libs snapshotter) -lpthread
	.build/snapshot-example

clean-c:
	rm -rf $(TESTPREFIX) .build/c-tests

# Packages (packaging/), built from one `make install` into a staging tree
# with PREFIX=/usr: a platform wheel of bindings/python with the library and
# its system libraries inside, and the Debian packages libsnapshotter0,
# libsnapshotter-dev and snapshotctl. scripts/test-packages.sh installs and
# checks them.
PKGDIR := $(SCRATCH)/packages
STAGE := $(CURDIR)/$(PKGDIR)/stage
.PHONY: stage wheel deb

stage:
	rm -rf $(STAGE)
	$(MAKE) install DESTDIR=$(STAGE) PREFIX=/usr

wheel: stage
	bash packaging/wheel/build.sh $(STAGE) $(PKGDIR)

deb: stage
	bash packaging/deb/build.sh $(STAGE) $(PKGDIR)
