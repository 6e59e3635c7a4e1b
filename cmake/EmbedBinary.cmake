# cmake -DINPUT=file -DOUTPUT=inc -P EmbedBinary.cmake
# Writes the bytes of INPUT to OUTPUT as a comma-separated list of hex
# literals, for `const unsigned char x[] = {\n#include "OUTPUT"\n};`.
file(READ "${INPUT}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
get_filename_component(name "${INPUT}" NAME)
file(WRITE "${OUTPUT}" "// Generated from ${name} by cmake/EmbedBinary.cmake.\n${bytes}\n")
