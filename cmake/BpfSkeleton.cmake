# bpf_skeleton(NAME SOURCE [CFLAGS flags...] [DEPENDS headers...])
# Compiles SOURCE (with the extra clang CFLAGS) to NAME.bpf.o and generates NAME.skel.h
# (struct NAME_bpf) with `bpftool gen skeleton`: one source can give several skeletons. Creates an INTERFACE target `NAME_skel` whose include path
# holds the skeleton, so host code links it like any library.
find_program(BPF_CLANG NAMES clang clang-19 clang-16 clang-14 REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)

set(BPF_ARCH_DIR x86)
set(BPF_TARGET_ARCH __TARGET_ARCH_x86)

set(BPF_CFLAGS -target bpf -g -O2 -D${BPF_TARGET_ARCH} -Wall -Werror
    -I${PROJECT_SOURCE_DIR}/vmlinux/${BPF_ARCH_DIR} -I${PROJECT_SOURCE_DIR}/include -I${PROJECT_SOURCE_DIR}/bpf)

function(bpf_skeleton name source)
  cmake_parse_arguments(ARG "" "" "CFLAGS;DEPENDS" ${ARGN})
  set(out_dir ${CMAKE_BINARY_DIR}/bpf)
  set(obj ${out_dir}/${name}.bpf.o)
  set(skel ${out_dir}/${name}.skel.h)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
    COMMAND ${BPF_CLANG} ${BPF_CFLAGS} ${ARG_CFLAGS} -c ${source} -o ${obj}
    DEPENDS ${source} ${ARG_DEPENDS}
    COMMENT "BPF ${name}.bpf.o"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${name}_bpf > ${skel}
    DEPENDS ${obj}
    COMMENT "skeleton ${name}.skel.h"
    VERBATIM)
  add_custom_target(${name}_skel_gen DEPENDS ${skel})
  add_library(${name}_skel INTERFACE)
  add_dependencies(${name}_skel ${name}_skel_gen)
  target_include_directories(${name}_skel INTERFACE ${out_dir})
endfunction()

# bpf_header_check(HEADER [DEPENDS headers...]): part of every build, HEADER compiled on its
# own, so that a header that leans on what its includer defined first fails to build.
# Unused static functions are what a header alone has.
function(bpf_header_check header)
  cmake_parse_arguments(ARG "" "" "DEPENDS" ${ARGN})
  get_filename_component(base ${header} NAME)
  set(stamp ${CMAKE_BINARY_DIR}/bpf/${base}.alone)
  add_custom_command(
    OUTPUT ${stamp}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/bpf
    COMMAND ${BPF_CLANG} ${BPF_CFLAGS} -Wno-unused-function -x c -fsyntax-only ${header}
    COMMAND ${CMAKE_COMMAND} -E touch ${stamp}
    DEPENDS ${header} ${ARG_DEPENDS}
    COMMENT "BPF header ${base} on its own"
    VERBATIM)
  add_custom_target(${base}_alone ALL DEPENDS ${stamp})
endfunction()
