# Warnings are bugs: the picky set below is an error on gcc and clang alike.
function(cdr_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
    -Wimplicit-fallthrough -Wformat=2 -Wpointer-arith -Wcast-qual -Wundef
    -Wvla -Wwrite-strings)
endfunction()
