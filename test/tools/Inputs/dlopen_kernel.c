/*===- dlopen_kernel.c - Loads an attnc --emit=so library from plain C -----===//
 *
 * usage: dlopen_kernel LIBRARY SYMBOL
 * dlopen()s LIBRARY with RTLD_NOW (every undefined symbol must resolve
 * from the library's own dependencies: this program links neither
 * libstdc++ nor the attnc runtime) and looks up SYMBOL. Prints "loaded
 * SYMBOL" and exits 0, or prints dlerror() and exits 1.
 *
 *===----------------------------------------------------------------------===*/
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s LIBRARY SYMBOL\n", argv[0]);
    return 2;
  }
  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    printf("dlopen failed: %s\n", dlerror());
    return 1;
  }
  if (!dlsym(lib, argv[2])) {
    printf("dlsym failed: %s\n", dlerror());
    return 1;
  }
  printf("loaded %s\n", argv[2]);
  dlclose(lib);
  return 0;
}
