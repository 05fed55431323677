"""Offline stand-in for @rules_cc//cc:defs.bzl, for Bazel 4.2.3 (Debian's bazel-bootstrap).

Bazel 4's built-in @bazel_tools//tools/cpp BUILD files load cc_* macros from @rules_cc, which
Bazel would download (no network here), and Debian's bazel-rules-cc is too new for Bazel 4.2.3.
Early rules_cc releases were exactly this: thin wrappers over the native rules, which Bazel 4
still has. tf_metarl builds no C++; these exist so Python targets' toolchain resolution works.
"""

def cc_binary(**attrs):
    native.cc_binary(**attrs)

def cc_import(**attrs):
    native.cc_import(**attrs)

def cc_library(**attrs):
    native.cc_library(**attrs)

def cc_proto_library(**attrs):
    native.cc_proto_library(**attrs)

def cc_test(**attrs):
    native.cc_test(**attrs)

def cc_toolchain(**attrs):
    native.cc_toolchain(**attrs)

def cc_toolchain_suite(**attrs):
    native.cc_toolchain_suite(**attrs)

def fdo_prefetch_hints(**attrs):
    native.fdo_prefetch_hints(**attrs)

def fdo_profile(**attrs):
    native.fdo_profile(**attrs)

def objc_import(**attrs):
    native.objc_import(**attrs)

def objc_library(**attrs):
    native.objc_library(**attrs)
