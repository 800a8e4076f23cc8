/* -*- c++ -*- ----------------------------------------------------------
   pair_style tfpot: a tfpot tensor-frame potential exported to TorchScript
   (`tfpot export MODEL -o model.pt`), run inside LAMMPS as a plugin.

   Usage:
     plugin load /abs/path/tfpotplugin.so      (from `tfpot lammps build`)
     units metal
     newton on                                 (default)
     pair_style tfpot [device cpu|cuda|cuda:N] [jit_optimize yes|no]
     pair_coeff * * model.pt Cu Ni Al          (one element per atom type)

   The model is a message-passing network over `num_hops` hops of radius `cutoff`.
   Each rank evaluates it on its owned AND ghost atoms with a full neighbour list
   that includes ghost atoms' neighbours; the ghost shell is widened to
   `ghost_cutoff + skin` (metadata) so every owned atom's energy is exact.
   Energy is tallied on owned atoms only; forces are written for owned and ghost
   atoms and summed by LAMMPS' reverse communication (newton_pair on);
   the global virial comes from virial_fdotr_compute().

   Units: metal (eV, Angstrom, eV/Angstrom) only.
   Not supported: per-atom virial (compute stress/atom, centroid/stress/atom).
------------------------------------------------------------------------- */

#ifndef LMP_PAIR_TFPOT_H
#define LMP_PAIR_TFPOT_H

#include "pair.h"

#include <torch/cuda.h>
#include <torch/script.h>

#include <string>
#include <vector>

namespace LAMMPS_NS {

class PairTFPot : public Pair {
 public:
  PairTFPot(class LAMMPS *);
  ~PairTFPot() override;

  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;
  double memory_usage() override;

  // what this plugin reads; a model with another format/version is refused
  static constexpr const char *FORMAT = "tfpot-lammps";
  static constexpr int FORMAT_VERSION = 1;

 protected:
  void allocate();
  void load_model(const std::string &path);

  torch::jit::Module model;
  bool model_loaded;
  bool jit_optimize;             // TorchScript graph-executor optimisation (default off)
  torch::Device device;
  torch::Dtype dtype;            // dtype of positions the model expects
  std::string model_path;
  std::string dtype_name;
  std::string checksum_status;   // "checksum verified", or why the export was not verified

  // metadata.json
  std::vector<int> species_z;    // atomic numbers in model order
  double cutoff;                 // model (edge) cutoff, Angstrom
  double ghost_cutoff;           // num_hops * cutoff, Angstrom
  int num_hops;

  std::vector<int64_t> type2species;    // LAMMPS type (1-based) -> model species index

  // scratch buffers reused across steps
  std::vector<int64_t> species_buf;
  std::vector<int64_t> edge_buf;      // centres i, then (after the loop) neighbours j
  std::vector<int64_t> edge_j_buf;    // neighbours j while collecting
};

}    // namespace LAMMPS_NS

#endif
