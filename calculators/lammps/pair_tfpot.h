/* -*- c++ -*- ----------------------------------------------------------
   pair_style tfpot: a tfpot tensor-frame potential exported to TorchScript
   (`tfpot export MODEL -o model.pt`, format version 2), run inside LAMMPS as
   a plugin.

   Usage:
     plugin load /abs/path/tfpotplugin.so      (from `tfpot lammps build`)
     units metal
     newton on                                 (default)
     pair_style tfpot [device cpu|cuda|cuda:N] [jit_optimize yes|no] [recompute yes|no]
                      [memory_reuse yes|no]
     pair_coeff * * model.pt Cu Ni Al          (one element per atom type)

   `memory_reuse yes` (default) keeps memory freed after a step in the heap
   for the next one (glibc mallopt), instead of page-faulting it in again.
   `recompute yes` keeps one stage's autograd graph in memory at a time (the
   earlier stages run again in the backward pass): less memory, more time.
   `halo skip_forward|skip_reverse` drops one direction of the exchange: a
   negative control for the test suite (wrong results, with a warning).

   Per-layer halo exchange. The model's atomic energies are cut into
   `num_stages` stages (one per message-passing layer); each stage is computed
   for the owned atoms from their own edges (full neighbour list of owned
   atoms, one model cutoff). After each stage but the last, the owners' state
   rows (features, frames and gates, all invariant: copied verbatim) are sent
   to their ghosts with comm->forward_comm(this). The backward pass runs the
   stages in reverse with torch::autograd::grad; between stages the gradients
   on ghost rows are summed into their owners with comm->reverse_comm(this).
   Position gradients come from the edge vectors x_j - x_i of every stage;
   forces on ghost atoms go home by LAMMPS' reverse communication (newton on),
   and the global virial is virial_fdotr_compute(). The ghost shell is the
   model cutoff + skin (LAMMPS' default), and every rank, with or without
   owned atoms, makes the same sequence of exchange calls.

   Units: metal (eV, Angstrom, eV/Angstrom) only.
   Not supported: per-atom virial (compute stress/atom, centroid/stress/atom),
   newton off, comm_modify mode multi, tfpot on only some pairs of atom types.
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
  void setup() override;
  double memory_usage() override;

  int pack_forward_comm(int, int *, double *, int, int *) override;
  void unpack_forward_comm(int, int, double *) override;
  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;

  // what this plugin reads; a model with another format/version is refused
  static constexpr const char *FORMAT = "tfpot-lammps";
  static constexpr int FORMAT_VERSION = 2;

  // negative controls for the test suite: drop one direction of the halo exchange
  enum HaloMode { HALO_EXCHANGE = 0, HALO_SKIP_FORWARD = 1, HALO_SKIP_REVERSE = 2 };

 protected:
  void allocate();
  void load_model(const std::string &path);
  void read_metadata(const std::string &path, const std::string &text);
  void check_pair_coverage();
  void keep_freed_memory();

  // one force evaluation, in the order compute() calls them
  int64_t collect_edges();
  void run_stages(torch::Tensor &vec, std::vector<torch::Tensor> &stage_inputs,
                  std::vector<torch::Tensor> &stage_outputs);
  torch::Tensor backpropagate(const torch::Tensor &vec, std::vector<torch::Tensor> &stage_inputs,
                              std::vector<torch::Tensor> &stage_outputs);
  torch::Tensor call_stage(int t, const torch::Tensor &vec, const torch::Tensor &species,
                           const torch::Tensor &edge_index, const torch::Tensor &state);
  torch::Tensor halo_forward(const torch::Tensor &owned, int width);
  torch::Tensor halo_reverse(const torch::Tensor &grad, int width);
  void apply_edge_forces(const torch::Tensor &grad_vec);
  void tally_energies(const torch::Tensor &energies);

  torch::jit::Module model;
  bool model_loaded;
  bool jit_optimize;             // TorchScript graph-executor optimisation (default off)
  bool recompute;                // keep one stage's autograd graph at a time (less memory)
  bool memory_reuse;             // keep freed memory in the heap (glibc mallopt; default on)
  int halo_mode;                 // HaloMode; HALO_EXCHANGE unless testing
  torch::Device device;
  torch::Dtype dtype;            // dtype of the model (edge vectors and states)
  std::string model_path;
  std::string dtype_name;
  std::string checksum_status;   // "checksum verified", or why the export was not verified

  // metadata.json
  std::vector<int> species_z;    // atomic numbers in model order
  double cutoff;                 // model (edge) cutoff, Angstrom
  double receptive_field;        // num_hops * cutoff, Angstrom (what one atom's energy sees)
  int num_hops;
  int num_stages;                // stages = message-passing layers
  std::vector<int> state_widths;    // numbers per atom sent to ghosts after stage t

  std::vector<int64_t> type2species;    // LAMMPS type (1-based) -> model species index
  std::vector<int> pair_initialised;    // (ntypes+1)^2: init_one called for (i, j) this run

  // scratch buffers reused across steps
  std::vector<int64_t> species_buf;
  std::vector<int64_t> edge_buf;      // centres i, then (after the loop) neighbours j
  std::vector<int64_t> edge_j_buf;    // neighbours j while collecting
  std::vector<double> vec_buf;        // edge vectors x_j - x_i, (E, 3)
  torch::Tensor step_species;         // this step's model inputs (kept for recomputed stages)
  torch::Tensor step_edge_index;

  // the exchange in flight: rows of `halo_width` doubles per atom (owned, then ghosts)
  double *halo_data;
  int halo_width;
  int64_t halo_bytes_peak;            // largest exchange buffer so far (memory_usage)
};

}    // namespace LAMMPS_NS

#endif
