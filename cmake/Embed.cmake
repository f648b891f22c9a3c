# Turns a file into a C source defining `const char NAME[]` and `const size_t NAME_length`, so the
# engine serves its status page from the binary. Run as: cmake -DINPUT=... -DOUTPUT=... -DNAME=...
# -P Embed.cmake
file(READ "${INPUT}" content HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${content}")
string(LENGTH "${content}" hex_length)
math(EXPR length "${hex_length} / 2")
file(WRITE "${OUTPUT}" "/* Generated from ${INPUT} by cmake/Embed.cmake. */\n#include <stddef.h>\n"
     "extern const char ${NAME}[];\nextern const size_t ${NAME}_length;\n"
     "const char ${NAME}[] = {${bytes}0x00};\nconst size_t ${NAME}_length = ${length};\n")
