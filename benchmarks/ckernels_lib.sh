# Sourced by the kernel A/B scripts (fp32_conv_ab.sh, int8_conv_ab.sh): builds a static
# library of every C kernel file in SRC with clang -O2, files compiled in parallel.
#     lib SRC OUT.a
lib() {
    local objs=$(mktemp -d)
    for f in "$1"/*.c; do clang -O2 -fPIC -I"$1/include" -I"$1" -c "$f" -o "$objs/$(basename "$f").o" & done
    wait
    ar rcs "$2" "$objs"/*.o
    rm -rf "$objs"
}
