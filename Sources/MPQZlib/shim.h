// zlib for mpq's own .npz reader (Sources/ONNX/NPZArchive.swift): raw inflate with
// explicit bounds and CRC-32. Not named CZlib: ZIPFoundation's Linux build owns that name.
#include <zlib.h>
