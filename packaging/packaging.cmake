# packaging.cmake - what `cpack -G DEB` and the Python wheel (scikit-build-core) add to the build.
#
# Included at the end of the top-level CMakeLists.txt. The binary and the shim are installed there
# (bin/, share/arbiter/python/); this file adds what a package needs around them: the systemd
# units, the man page, the examples, the Debian metadata, and the wheel's own layout.
#
#   cmake -S . -B build-deb -DCMAKE_INSTALL_PREFIX=/usr -DARBITER_TESTS=OFF -DARBITER_RELOCATABLE=ON
#   cmake --build build-deb -j && (cd build-deb && cpack -G DEB)      # -> arbiter_0.1.0_amd64.deb
#   pip install .                                                     # -> the wheel, via pyproject.toml

option(ARBITER_RELOCATABLE "Do not compile the source tree's worker-shim path into the binary (packages)" OFF)

# A packaged binary must find its shim next to itself (share/arbiter/python, or site-packages for the
# wheel), never in a source tree that the package builder happened to use.
if(ARBITER_RELOCATABLE OR SKBUILD)
  get_target_property(_arbiter_defs arbiter_core COMPILE_DEFINITIONS)
  list(FILTER _arbiter_defs EXCLUDE REGEX "^ARBITER_SOURCE_SHIM_DIR=")
  set_target_properties(arbiter_core PROPERTIES COMPILE_DEFINITIONS "${_arbiter_defs}")
endif()

set(_arbiter_packaging "${CMAKE_CURRENT_LIST_DIR}")

if(SKBUILD)
  # The wheel: the binary goes to the venv's bin/ (where it defaults --python to the venv's
  # interpreter), the shim to site-packages (importable by that interpreter). Only this component
  # is put in the wheel (pyproject.toml: install.components), not the /usr layout above.
  install(TARGETS arbiter RUNTIME DESTINATION "${SKBUILD_SCRIPTS_DIR}" COMPONENT wheel)
  install(DIRECTORY "${PROJECT_SOURCE_DIR}/worker-shim/arbiter_worker"
          DESTINATION "${SKBUILD_PLATLIB_DIR}" COMPONENT wheel PATTERN "__pycache__" EXCLUDE)
  return()
endif()

# Units go where Debian 12's systemd looks for package units (/usr/lib/systemd/system with merged /usr).
set(ARBITER_SYSTEMD_UNIT_DIR "lib/systemd/system" CACHE STRING "systemd unit directory, relative to the prefix")
install(FILES "${_arbiter_packaging}/systemd/arbiter@.service" "${_arbiter_packaging}/systemd/arbiter@.socket"
        DESTINATION "${ARBITER_SYSTEMD_UNIT_DIR}")

# Debian policy wants man pages compressed, at maximum compression and reproducibly (-n: no timestamp).
add_custom_command(OUTPUT "${CMAKE_CURRENT_BINARY_DIR}/arbiter.1.gz"
  COMMAND gzip -9nc "${_arbiter_packaging}/man/arbiter.1" > "${CMAKE_CURRENT_BINARY_DIR}/arbiter.1.gz"
  DEPENDS "${_arbiter_packaging}/man/arbiter.1" VERBATIM)
add_custom_target(arbiter_man ALL DEPENDS "${CMAKE_CURRENT_BINARY_DIR}/arbiter.1.gz")
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/arbiter.1.gz" DESTINATION "${CMAKE_INSTALL_MANDIR}/man1")

install(FILES "${_arbiter_packaging}/debian/copyright" README.md docs/worker-channel.md
        DESTINATION "${CMAKE_INSTALL_DOCDIR}")
install(DIRECTORY "${PROJECT_SOURCE_DIR}/examples/"
        DESTINATION "${CMAKE_INSTALL_DOCDIR}/examples" PATTERN "__pycache__" EXCLUDE)

# ---- Debian package (cpack -G DEB) ----
set(CPACK_PACKAGE_NAME arbiter)
set(CPACK_PACKAGE_VENDOR "arbiter")
set(CPACK_PACKAGE_CONTACT "arbiter maintainers <arbiter@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "process supervisor for Python ASGI apps (uvicorn workers)")
set(CPACK_PACKAGE_DESCRIPTION
"arbiter runs Python ASGI apps (FastAPI, Starlette, Litestar) in production: a small C daemon
that owns the listening sockets, runs N uvicorn worker processes from the app's own venv, restarts
crashed workers with backoff, scales them at runtime and replaces them with overlap so that a reload
fails no request. It supports systemd's Type=notify, watchdog and socket activation; see
arbiter@.service, arbiter@.socket and arbiter(1).")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION web)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/arbiter/arbiter")
# Library dependencies are computed by dpkg-shlibdeps (libuv1, libjansson4, libc6).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# The workers run the app's venv; the shim needs Python >= 3.9 and uvicorn in that venv.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "python3 (>= 3.9), python3-venv")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "nginx | haproxy")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA "${_arbiter_packaging}/debian/postinst;${_arbiter_packaging}/debian/prerm;${_arbiter_packaging}/debian/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(CPACK_STRIP_FILES ON)
set(CPACK_GENERATOR DEB)
include(CPack)
