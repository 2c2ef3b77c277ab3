# Sourced by the kernel A/B scripts (fp32_conv_ab.sh, int8_conv_ab.sh, ...). `lib` builds a
# static library of every C kernel file in SRC with clang -O2, files compiled in parallel.
#     lib SRC OUT.a
lib() {
    local objs=$(mktemp -d)
    for f in "$1"/*.c; do clang -O2 -fPIC -I"$1/include" -I"$1" -c "$f" -o "$objs/$(basename "$f").o" & done
    wait
    ar rcs "$2" "$objs"/*.o
    rm -rf "$objs"
}

# A harness built twice: against BASE's Sources/CKernels (a commit; "-" skips it) as WORK/base,
# and against the working tree's as WORK/new.
#     ab_build BASE HARNESS.c WORK
ab_build() {
    if [ "$1" != "-" ]; then
        git archive "$1" Sources/CKernels | tar -x -C "$3"
        lib "$3/Sources/CKernels" "$3/base.a"
        clang -O2 -ISources/CKernels/include "$2" "$3/base.a" -lpthread -lm -o "$3/base"
    fi
    lib Sources/CKernels "$3/new.a"
    clang -O2 -ISources/CKernels/include "$2" "$3/new.a" -lpthread -lm -o "$3/new"
}
