/* ----------------------------------------------------------------------
   pair_style tfpot: see pair_tfpot.h for the contract with the exported model.
------------------------------------------------------------------------- */

#include "pair_tfpot.h"
#include "tfpot_block_cache.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "json.h"
#include "memory.h"
#include "modify.h"
#include "compute.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"
#include "utils.h"

#include <torch/autograd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>

using namespace LAMMPS_NS;

namespace {

// chemical symbols, index = atomic number
const char *const SYMBOLS[] = {
    "X",  "H",  "He", "Li", "Be", "B",  "C",  "N",  "O",  "F",  "Ne", "Na", "Mg", "Al", "Si",
    "P",  "S",  "Cl", "Ar", "K",  "Ca", "Sc", "Ti", "V",  "Cr", "Mn", "Fe", "Co", "Ni", "Cu",
    "Zn", "Ga", "Ge", "As", "Se", "Br", "Kr", "Rb", "Sr", "Y",  "Zr", "Nb", "Mo", "Tc", "Ru",
    "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te", "I",  "Xe", "Cs", "Ba", "La", "Ce", "Pr",
    "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W",
    "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac",
    "Th", "Pa", "U",  "Np", "Pu", "Am", "Cm", "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf",
    "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh", "Fl", "Mc", "Lv", "Ts", "Og"};
constexpr int NUM_SYMBOLS = sizeof(SYMBOLS) / sizeof(SYMBOLS[0]);

int atomic_number(const std::string &symbol)
{
  for (int z = 1; z < NUM_SYMBOLS; ++z)
    if (symbol == SYMBOLS[z]) return z;
  return -1;
}

std::string symbol_of(int z)
{
  if (z > 0 && z < NUM_SYMBOLS) return SYMBOLS[z];
  return fmt::format("Z={}", z);
}

std::string species_list(const std::vector<int> &zs)
{
  std::string out;
  for (size_t k = 0; k < zs.size(); ++k) out += (k ? " " : "") + symbol_of(zs[k]);
  return out;
}

// first line of an exception text (torch errors carry long C++ backtraces)
std::string first_line(const char *what)
{
  std::string s(what);
  auto pos = s.find('\n');
  return pos == std::string::npos ? s : s.substr(0, pos);
}

constexpr int CENTROID_NOTAVAIL_FLAG = 2;    // Pair::centroidstressflag: not implemented

/* ----------------------------------------------------------------------
   export checksum: SHA-256 of the canonical encoding of tfpot.integrity
   (Python: tfpot/integrity.py, export_digest), over
     {"metadata": <metadata.json without "checksum">, "tensors": {name: tensor}}
   for every parameter and buffer of the module. Encoding E (u64 = 8-byte
   little-endian): null N; bool B+byte; integer I+u64 len+decimal; float
   F+IEEE-754 double LE; string S+u64 len+UTF-8; array L+u64 count+E(items);
   object D+u64 count+E(key)E(value) in the byte order of E(key); tensor
   T+E(dtype name)+E([shape])+u64 nbytes+raw bytes (C order, LE, CPU).
------------------------------------------------------------------------- */

class Sha256 {
 public:
  Sha256() { reset(); }
  void update(const void *data, size_t n)
  {
    const auto *p = static_cast<const unsigned char *>(data);
    for (size_t k = 0; k < n; ++k) {
      block[used++] = p[k];
      if (used == 64) {
        compress();
        used = 0;
      }
    }
    total += n;
  }
  std::string hexdigest()
  {
    uint64_t bits = total * 8;
    const unsigned char pad = 0x80, zero = 0;
    update(&pad, 1);
    while (used != 56) update(&zero, 1);
    unsigned char len[8];
    for (int k = 0; k < 8; ++k) len[7 - k] = (unsigned char) (bits >> (8 * k));
    update(len, 8);
    static const char *hex = "0123456789abcdef";
    std::string out;
    for (uint32_t v : h)
      for (int k = 28; k >= 0; k -= 4) out += hex[(v >> k) & 0xF];
    reset();
    return out;
  }

 private:
  uint32_t h[8];
  unsigned char block[64];
  size_t used;
  uint64_t total;

  void reset()
  {
    static const uint32_t init[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    std::memcpy(h, init, sizeof(h));
    used = 0;
    total = 0;
  }
  static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }
  void compress()
  {
    static const uint32_t K[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2};
    uint32_t w[64];
    for (int t = 0; t < 16; ++t)
      w[t] = (uint32_t(block[4 * t]) << 24) | (uint32_t(block[4 * t + 1]) << 16) |
          (uint32_t(block[4 * t + 2]) << 8) | uint32_t(block[4 * t + 3]);
    for (int t = 16; t < 64; ++t) {
      uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
      uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
      w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int t = 0; t < 64; ++t) {
      uint32_t S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      uint32_t ch = (e & f) ^ (~e & g);
      uint32_t t1 = hh + S1 + ch + K[t] + w[t];
      uint32_t S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
      uint32_t t2 = S0 + maj;
      hh = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
};

// the encoding goes to a hash or, for dict keys that must be sorted, into a string
struct StringSink {
  std::string bytes;
  void update(const void *data, size_t n) { bytes.append(static_cast<const char *>(data), n); }
};

template <class Sink> void enc_u64(Sink &s, uint64_t v)
{
  unsigned char b[8];
  for (int k = 0; k < 8; ++k) b[k] = (unsigned char) (v >> (8 * k));
  s.update(b, 8);
}

template <class Sink> void enc_tagged(Sink &s, char tag, const std::string &bytes)
{
  s.update(&tag, 1);
  enc_u64(s, bytes.size());
  s.update(bytes.data(), bytes.size());
}

std::string encoded_str(const std::string &text)
{
  StringSink k;
  enc_tagged(k, 'S', text);
  return k.bytes;
}

template <class Sink> void enc_json(Sink &s, const json &v)
{
  if (v.is_null()) {
    s.update("N", 1);
  } else if (v.is_boolean()) {
    s.update(v.get<bool>() ? "B\x01" : "B\x00", 2);
  } else if (v.is_number_unsigned()) {
    enc_tagged(s, 'I', std::to_string(v.get<uint64_t>()));
  } else if (v.is_number_integer()) {
    enc_tagged(s, 'I', std::to_string(v.get<int64_t>()));
  } else if (v.is_number_float()) {
    double d = v.get<double>();
    uint64_t bits;
    std::memcpy(&bits, &d, 8);
    s.update("F", 1);
    enc_u64(s, bits);
  } else if (v.is_string()) {
    enc_tagged(s, 'S', v.get<std::string>());
  } else if (v.is_array()) {
    s.update("L", 1);
    enc_u64(s, v.size());
    for (const auto &item : v) enc_json(s, item);
  } else {    // object: entries in the byte order of their encoded keys
    std::vector<std::pair<std::string, const json *>> items;
    for (auto it = v.begin(); it != v.end(); ++it) items.emplace_back(encoded_str(it.key()), &it.value());
    std::sort(items.begin(), items.end(),
              [](const auto &a, const auto &b) { return a.first < b.first; });
    s.update("D", 1);
    enc_u64(s, items.size());
    for (const auto &item : items) {
      s.update(item.first.data(), item.first.size());
      enc_json(s, *item.second);
    }
  }
}

// Python's str(dtype) without "torch."; empty for a dtype tfpot never writes
std::string dtype_label(c10::ScalarType t)
{
  switch (t) {
    case c10::ScalarType::Double: return "float64";
    case c10::ScalarType::Float: return "float32";
    case c10::ScalarType::Half: return "float16";
    case c10::ScalarType::BFloat16: return "bfloat16";
    case c10::ScalarType::Long: return "int64";
    case c10::ScalarType::Int: return "int32";
    case c10::ScalarType::Short: return "int16";
    case c10::ScalarType::Char: return "int8";
    case c10::ScalarType::Byte: return "uint8";
    case c10::ScalarType::Bool: return "bool";
    default: return "";
  }
}

// "sha256:<hex>" of an export, or "" with `why` set when a tensor has an unknown dtype
std::string export_checksum(const json &meta, const torch::jit::Module &module, std::string &why)
{
  json rest = meta;
  rest.erase("checksum");
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto &p : module.named_parameters(true)) tensors.emplace_back(p.name, p.value);
  for (const auto &b : module.named_buffers(true)) tensors.emplace_back(b.name, b.value);
  std::vector<std::pair<std::string, at::Tensor>> sorted;
  for (auto &t : tensors) sorted.emplace_back(encoded_str(t.first), t.second);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto &a, const auto &b) { return a.first < b.first; });

  Sha256 h;
  // {"metadata": ..., "tensors": ...}: "tensors" (7 bytes) sorts before "metadata" (8)
  h.update("D", 1);
  enc_u64(h, 2);
  const std::string key_t = encoded_str("tensors"), key_m = encoded_str("metadata");
  h.update(key_t.data(), key_t.size());
  h.update("D", 1);
  enc_u64(h, sorted.size());
  for (const auto &item : sorted) {
    at::Tensor t = item.second.detach().to(torch::kCPU).contiguous();
    const std::string label = dtype_label(t.scalar_type());
    if (label.empty()) {
      why = fmt::format("tensor {} has dtype {}", item.first.substr(9), c10::toString(t.scalar_type()));
      return "";
    }
    h.update(item.first.data(), item.first.size());
    h.update("T", 1);
    enc_tagged(h, 'S', label);
    h.update("L", 1);
    enc_u64(h, t.dim());
    for (int64_t d = 0; d < t.dim(); ++d) enc_tagged(h, 'I', std::to_string(t.size(d)));
    const uint64_t nbytes = t.numel() * t.element_size();
    enc_u64(h, nbytes);
    if (nbytes) h.update(t.data_ptr(), nbytes);
  }
  h.update(key_m.data(), key_m.size());
  enc_json(h, rest);
  return "sha256:" + h.hexdigest();
}

// why an export must be refused ("" if its checksum matches, or it has none: see `status`)
std::string checksum_problem(const std::string &path, const json &meta,
                             const torch::jit::Module &module, std::string &status)
{
  if (!meta.contains("checksum")) {
    status = "no checksum (written before tfpot 0.4): not verified";
    return "";
  }
  const json &stored_j = meta["checksum"];
  if (!stored_j.is_string() || stored_j.get<std::string>().rfind("sha256:", 0) != 0)
    return fmt::format("pair tfpot: invalid metadata.json in '{}': malformed checksum {}", path,
                       stored_j.dump());
  const std::string stored = stored_j.get<std::string>();
  std::string why;
  const std::string actual = export_checksum(meta, module, why);
  if (actual.empty())
    return fmt::format("pair tfpot: '{}' cannot be checksummed ({}); export the model again "
                       "with `tfpot export`", path, why);
  if (actual != stored)
    return fmt::format("pair tfpot: '{}' fails its checksum (stored {}..., content {}...): the "
                       "file is corrupt or was altered; export the model again with "
                       "`tfpot export`", path, stored.substr(0, 19), actual.substr(0, 19));
  status = "checksum verified";
  return "";
}

}    // namespace

/* ---------------------------------------------------------------------- */

PairTFPot::PairTFPot(LAMMPS *lmp) :
    Pair(lmp), model_loaded(false), jit_optimize(false), recompute(false), memory_reuse(true),
    halo_mode(HALO_EXCHANGE),
    device(torch::kCPU), dtype(torch::kFloat64), cutoff(0.0), receptive_field(0.0), num_hops(0),
    num_stages(0), block_cache(nullptr), halo_data(nullptr), halo_width(0), halo_bytes_peak(0)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  ghostneigh = 0;    // owned atoms' edges only: ghosts receive their state by forward comm
  no_virial_fdotr_compute = 0;
  centroidstressflag = CENTROID_NOTAVAIL_FLAG;
  comm_forward = comm_reverse = 0;    // set from the model's state widths in init_style()
}

/* ---------------------------------------------------------------------- */

PairTFPot::~PairTFPot()
{
  if (copymode) return;
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
}

/* ---------------------------------------------------------------------- */

void PairTFPot::allocate()
{
  allocated = 1;
  int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) setflag[i][j] = 0;
  memory->create(cutsq, n, n, "pair:cutsq");
}

/* ----------------------------------------------------------------------
   pair_style tfpot [device cpu|cuda|cuda:N] [jit_optimize yes|no] [recompute yes|no]
                    [memory_reuse yes|no]
------------------------------------------------------------------------- */

void PairTFPot::settings(int narg, char **arg)
{
  int iarg = 0;
  // keyword yes|no: sets the flag and moves past both words
  auto yes_no = [&](bool &flag) {
    if (iarg + 1 >= narg)
      error->all(FLERR, "pair_style tfpot: '{}' needs a value (yes or no)", arg[iarg]);
    flag = utils::logical(FLERR, arg[iarg + 1], false, lmp) == 1;
    iarg += 2;
  };
  while (iarg < narg) {
    if (strcmp(arg[iarg], "device") == 0) {
      if (iarg + 1 >= narg) error->all(FLERR, "pair_style tfpot: 'device' needs a value (cpu or cuda)");
      std::string bad_device;
      try {
        device = torch::Device(arg[iarg + 1]);
      } catch (const std::exception &e) {
        bad_device = first_line(e.what());
      }
      if (!bad_device.empty())
        error->all(FLERR, "pair_style tfpot: invalid device '{}': {}", arg[iarg + 1], bad_device);
      if (device.is_cuda() && !torch::cuda::is_available())
        error->all(FLERR, "pair_style tfpot: device {} requested but this libtorch has no CUDA device",
                   arg[iarg + 1]);
      iarg += 2;
    } else if (strcmp(arg[iarg], "halo") == 0) {
      // negative controls for the test suite (results are wrong): not for production runs
      if (iarg + 1 >= narg)
        error->all(FLERR, "pair_style tfpot: 'halo' needs a value (exchange, skip_forward or "
                          "skip_reverse)");
      if (strcmp(arg[iarg + 1], "exchange") == 0)
        halo_mode = HALO_EXCHANGE;
      else if (strcmp(arg[iarg + 1], "skip_forward") == 0)
        halo_mode = HALO_SKIP_FORWARD;
      else if (strcmp(arg[iarg + 1], "skip_reverse") == 0)
        halo_mode = HALO_SKIP_REVERSE;
      else
        error->all(FLERR,
                   "pair_style tfpot: halo {} is not one of exchange, skip_forward, skip_reverse",
                   arg[iarg + 1]);
      if (halo_mode != HALO_EXCHANGE && comm->me == 0)
        error->warning(FLERR, "pair_style tfpot halo {}: the halo exchange is incomplete and the "
                              "results are WRONG (a negative control for tests)",
                       arg[iarg + 1]);
      iarg += 2;
    } else if (strcmp(arg[iarg], "memory_reuse") == 0) {
      yes_no(memory_reuse);
    } else if (strcmp(arg[iarg], "recompute") == 0) {
      yes_no(recompute);
    } else if (strcmp(arg[iarg], "jit_optimize") == 0) {
      yes_no(jit_optimize);
    } else {
      error->all(FLERR,
                 "pair_style tfpot: unknown keyword '{}' (expected: device cpu|cuda|cuda:N, "
                 "jit_optimize yes|no, recompute yes|no, memory_reuse yes|no)",
                 arg[iarg]);
    }
  }
  // The TorchScript graph executor's profiling/fusion passes re-specialise whenever the atom or
  // edge count changes and gain nothing on these stages (0.9-1.0x measured): off by default.
  torch::jit::setGraphExecutorOptimize(jit_optimize);
  if (memory_reuse) keep_freed_memory();
}

/* ----------------------------------------------------------------------
   Every step allocates and frees the autograd graphs of all stages; by
   default each large block goes back to the kernel and is page-faulted in
   again at the next step (31% of a 4000-atom step). The block cache keeps
   them for the next step (tfpot_block_cache.h: 1.4x faster, 1.75-2x the
   memory per atom); installed once per process.
------------------------------------------------------------------------- */

void PairTFPot::keep_freed_memory()
{
  if (block_cache != nullptr) return;
  block_cache = &tfpot::BlockCache::install();
  if (comm->me == 0)
    utils::logmesg(lmp, "pair tfpot: memory_reuse yes: large CPU blocks are kept for the next "
                        "step (faster; more memory per atom: `memory_reuse no` saves it)\n");
}

/* ----------------------------------------------------------------------
   load the TorchScript file and validate its metadata.json
------------------------------------------------------------------------- */

void PairTFPot::load_model(const std::string &path)
{
  {
    std::ifstream probe(path, std::ios::binary);
    if (!probe.good()) error->all(FLERR, "pair tfpot: cannot open model file '{}'", path);
  }

  torch::jit::ExtraFilesMap extra_files{{"metadata.json", ""}};
  std::string load_error;
  try {
    model = torch::jit::load(path, device, extra_files);
  } catch (const std::exception &e) {
    load_error = first_line(e.what());
  }
  if (!load_error.empty())
    error->all(FLERR,
               "pair tfpot: '{}' is not a TorchScript model ({}); export one with "
               "`tfpot export MODEL -o model.pt`",
               path, load_error);
  model.eval();

  const std::string &text = extra_files["metadata.json"];
  if (text.empty())
    error->all(FLERR,
               "pair tfpot: '{}' is not a tfpot export: it has no metadata.json; export the model "
               "with `tfpot export MODEL -o model.pt`",
               path);

  read_metadata(path, text);

  // format 2 exports run stage by stage (per-layer halo exchange)
  if (!model.find_method("stage"))
    error->all(FLERR,
               "pair tfpot: '{}' has no stage method, so it is not a format 2 tfpot export; "
               "re-export the model with `tfpot export MODEL -o model.pt`",
               path);

  model_path = path;
  model_loaded = true;
}

/* ----------------------------------------------------------------------
   validate metadata.json of an export and keep what the pair style needs
------------------------------------------------------------------------- */

void PairTFPot::read_metadata(const std::string &path, const std::string &text)
{
  json meta;
  std::string parse_error;
  try {
    meta = json::parse(text);
  } catch (const std::exception &e) {
    parse_error = first_line(e.what());
  }
  if (!parse_error.empty())
    error->all(FLERR, "pair tfpot: invalid metadata.json in '{}': {}", path, parse_error);
  if (!meta.is_object())
    error->all(FLERR, "pair tfpot: invalid metadata.json in '{}': expected a JSON object", path);

  // format and version first: an old export gets the re-export message, not a missing key
  for (const char *key : {"format", "format_version"})
    if (!meta.contains(key))
      error->all(FLERR, "pair tfpot: invalid metadata.json in '{}': missing key '{}'", path, key);

  const json &fmt_j = meta["format"];
  if (!fmt_j.is_string() || fmt_j.get<std::string>() != FORMAT)
    error->all(FLERR,
               "pair tfpot: '{}' is not a tfpot export: metadata format is {} (expected \"{}\")",
               path, fmt_j.dump(), FORMAT);

  const json &ver_j = meta["format_version"];
  if (!ver_j.is_number_integer())
    error->all(FLERR, "pair tfpot: invalid metadata.json in '{}': format_version {} is not an integer",
               path, ver_j.dump());
  const int version = ver_j.get<int>();
  if (version < FORMAT_VERSION)
    error->all(FLERR,
               "pair tfpot: '{}' is a format_version {} export (tfpot 0.3: the whole model "
               "evaluated on a num_hops x cutoff ghost shell); this plugin runs format_version {} "
               "(per-layer halo exchange): re-export the model with `tfpot export MODEL -o "
               "model.pt`",
               path, version, FORMAT_VERSION);
  if (version > FORMAT_VERSION)
    error->all(FLERR,
               "pair tfpot: '{}' has format_version {}, but this plugin reads format_version {}; "
               "rebuild the plugin (`tfpot lammps build`) from the tfpot that exported it",
               path, version, FORMAT_VERSION);

  for (const char *key : {"species", "cutoff", "num_hops", "ghost_cutoff", "num_stages",
                          "state_widths", "units", "dtype"})
    if (!meta.contains(key))
      error->all(FLERR, "pair tfpot: invalid metadata.json in '{}': missing key '{}'", path, key);

  // typed values; a type error is reported after the try block (error->all throws)
  std::string bad;
  std::string units;
  try {
    units = meta["units"].get<std::string>();
    species_z.clear();
    for (const auto &z : meta["species"]) species_z.push_back(z.get<int>());
    cutoff = meta["cutoff"].get<double>();
    receptive_field = meta["ghost_cutoff"].get<double>();
    num_hops = meta["num_hops"].get<int>();
    num_stages = meta["num_stages"].get<int>();
    state_widths.clear();
    for (const auto &w : meta["state_widths"]) state_widths.push_back(w.get<int>());
    dtype_name = meta["dtype"].get<std::string>();
  } catch (const std::exception &e) {
    bad = first_line(e.what());
  }
  if (!bad.empty()) error->all(FLERR, "pair tfpot: invalid metadata.json in '{}': {}", path, bad);

  if (units != "metal")
    error->all(FLERR, "pair tfpot: model '{}' uses units \"{}\" (this pair style supports metal only)",
               path, units);
  if (species_z.empty())
    error->all(FLERR, "pair tfpot: invalid metadata.json in '{}': empty species list", path);
  if (!(cutoff > 0.0))
    error->all(FLERR, "pair tfpot: invalid metadata.json in '{}': cutoff must be > 0 (got {})",
               path, cutoff);
  if (num_hops < 1)
    error->all(FLERR, "pair tfpot: invalid metadata.json in '{}': num_hops must be >= 1 (got {})",
               path, num_hops);
  if (receptive_field < cutoff)
    error->all(FLERR,
               "pair tfpot: invalid metadata.json in '{}': ghost_cutoff {} is smaller than cutoff {}",
               path, receptive_field, cutoff);
  if (num_stages < 1 || (int) state_widths.size() != num_stages - 1)
    error->all(FLERR,
               "pair tfpot: invalid metadata.json in '{}': num_stages {} needs {} state_widths "
               "(got {})",
               path, num_stages, num_stages - 1, state_widths.size());
  for (int w : state_widths)
    if (w < 1)
      error->all(FLERR, "pair tfpot: invalid metadata.json in '{}': state width {} must be >= 1",
                 path, w);

  if (dtype_name == "float64")
    dtype = torch::kFloat64;
  else if (dtype_name == "float32")
    dtype = torch::kFloat32;
  else
    error->all(FLERR,
               "pair tfpot: invalid metadata.json in '{}': dtype \"{}\" (expected float32 or "
               "float64)",
               path, dtype_name);

  const std::string bad_checksum = checksum_problem(path, meta, model, checksum_status);
  if (!bad_checksum.empty()) error->all(FLERR, bad_checksum);
}


/* ----------------------------------------------------------------------
   pair_coeff * * model.pt El1 El2 ... (one element per atom type, no NULL)
------------------------------------------------------------------------- */

void PairTFPot::coeff(int narg, char **arg)
{
  if (!allocated) allocate();
  const int ntypes = atom->ntypes;

  if (narg < 3)
    error->all(FLERR, "pair_coeff for tfpot: expected `pair_coeff * * model.pt El1 ... El{}`",
               ntypes);
  if (strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR, "pair_coeff for tfpot: the first two arguments must be * * (got {} {})",
               arg[0], arg[1]);
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR, "pair tfpot requires `units metal` (got units {})", update->unit_style);

  const int nelem = narg - 3;
  if (nelem < ntypes)
    error->all(FLERR,
               "pair_coeff for tfpot: atom type {} is left unmapped: give one element per atom "
               "type ({} types, got {} element(s))",
               nelem + 1, ntypes, nelem);
  if (nelem > ntypes)
    error->all(FLERR,
               "pair_coeff for tfpot: {} element(s) given for {} atom types: give exactly one "
               "element per atom type",
               nelem, ntypes);

  load_model(arg[2]);

  type2species.assign(ntypes + 1, -1);
  for (int t = 1; t <= ntypes; ++t) {
    const std::string sym = arg[2 + t];
    if (sym == "NULL")
      error->all(FLERR,
                 "pair_coeff for tfpot: NULL is not allowed (atom type {}): every atom type must "
                 "be mapped to an element of the model ({})",
                 t, species_list(species_z));
    const int z = atomic_number(sym);
    if (z < 0)
      error->all(FLERR, "pair_coeff for tfpot: '{}' (atom type {}) is not a chemical element", sym,
                 t);
    int idx = -1;
    for (size_t k = 0; k < species_z.size(); ++k)
      if (species_z[k] == z) idx = (int) k;
    if (idx < 0)
      error->all(FLERR,
                 "pair_coeff for tfpot: element {} (atom type {}) is not in model '{}' (model "
                 "species: {})",
                 sym, t, model_path, species_list(species_z));
    type2species[t] = idx;
  }

  for (int i = 1; i <= ntypes; i++)
    for (int j = i; j <= ntypes; j++) setflag[i][j] = 1;

  if (comm->me == 0)
    utils::logmesg(lmp,
                   "pair tfpot: model {} (species {}; cutoff {} A; {} stages, {} halo "
                   "exchanges; {}; device {}; {})\n",
                   model_path, species_list(species_z), cutoff, num_stages, num_stages - 1,
                   dtype_name, device.str(), checksum_status);
}

/* ---------------------------------------------------------------------- */

void PairTFPot::init_style()
{
  if (!model_loaded)
    error->all(FLERR, "pair tfpot: no model loaded; use `pair_coeff * * model.pt El1 El2 ...`");
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR, "pair tfpot requires `units metal` (got units {})", update->unit_style);
  if (force->newton_pair == 0)
    error->all(FLERR,
               "pair tfpot requires newton pair on (forces on ghost atoms and gradients of their "
               "states are summed into their owners by reverse communication); remove `newton off`");
  for (int t = 1; t <= atom->ntypes; ++t)
    if (t >= (int) type2species.size() || type2species[t] < 0)
      error->all(FLERR, "pair tfpot: atom type {} is not mapped to an element", t);
  if (comm->mode != Comm::SINGLE)
    error->all(FLERR, "pair tfpot supports only `comm_modify mode single`; remove `comm_modify "
                      "mode multi`");

  // per-atom virials are not computed (forces come from one backward pass per stage); refuse
  // them here rather than at the first step that asks
  for (const auto &c : modify->get_compute_list()) {
    const std::string style = c->style;
    if (style.find("stress/atom") != std::string::npos)
      error->all(FLERR,
                 "pair tfpot does not support per-atom virial (compute {} {}); use the global "
                 "pressure or remove the compute",
                 c->id, style);
  }

  // a full list of the owned atoms: each stage needs every edge of an owned centre, and
  // nothing of the ghosts but their states, which arrive by forward communication
  neighbor->add_request(this, NeighConst::REQ_FULL);

  // The largest state sent to (and gradient received from) ghosts, in doubles per atom. Comm
  // sizes its buffers from force->pair after this; under pair_style hybrid/overlay force->pair
  // is the hybrid style, which read our (then zero) widths when it was created: raise its too.
  int widest = 0;
  for (int w : state_widths) widest = std::max(widest, w);
  comm_forward = comm_reverse = widest;
  if (force->pair && force->pair != this) {
    force->pair->comm_forward = std::max(force->pair->comm_forward, widest);
    force->pair->comm_reverse = std::max(force->pair->comm_reverse, widest);
  }

  const int ntypes = atom->ntypes;
  pair_initialised.assign((size_t) (ntypes + 1) * (ntypes + 1), 0);

  if (comm->me == 0)
    utils::logmesg(lmp,
                   "pair tfpot: per-layer halo exchange: {} stage(s), {} exchange(s) of {} "
                   "number(s) per ghost atom; ghost shell = cutoff {} A + skin {} A "
                   "(an atom's energy reaches {} A = {} hops)\n",
                   num_stages, num_stages - 1, widest, cutoff, neighbor->skin, receptive_field,
                   num_hops);
}

/* ---------------------------------------------------------------------- */

double PairTFPot::init_one(int i, int j)
{
  if (setflag[i][j] == 0)
    error->all(FLERR, "pair tfpot: no pair_coeff for atom types {} {}", i, j);
  const int n = atom->ntypes + 1;
  if ((int) pair_initialised.size() == n * n) pair_initialised[i * n + j] = pair_initialised[j * n + i] = 1;
  return cutoff;
}

/* ----------------------------------------------------------------------
   after init: the model must see every pair of atom types (pair_style hybrid
   assigns a sub-style only the pairs given to it, and skips the others in its
   neighbour list: the model would silently miss edges)
------------------------------------------------------------------------- */

void PairTFPot::setup()
{
  check_pair_coverage();
}

void PairTFPot::check_pair_coverage()
{
  const int n = atom->ntypes + 1;
  if ((int) pair_initialised.size() != n * n) return;
  for (int i = 1; i < n; ++i)
    for (int j = i; j < n; ++j)
      if (!pair_initialised[i * n + j])
        error->all(FLERR,
                   "pair tfpot must handle every pair of atom types, but types {} {} are given to "
                   "another sub-style; use `pair_style hybrid/overlay tfpot ...` with "
                   "`pair_coeff * * tfpot model.pt ...` to add other terms",
                   i, j);
}

/* ----------------------------------------------------------------------
   one force evaluation: stages forward with halo exchanges, then backward
------------------------------------------------------------------------- */

void PairTFPot::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  if (vflag_atom || cvflag_atom)
    error->all(FLERR,
               "pair tfpot does not support per-atom virial (compute stress/atom or "
               "centroid/stress/atom); use the global pressure");

  // the previous step's tensors are all freed by now: drop cached blocks it did not reuse
  if (block_cache != nullptr) block_cache->end_step();

  // forces are gradients: record the graph even if the caller (e.g. LAMMPS driven from Python
  // inside torch.no_grad()) switched gradient mode off in this thread
  torch::AutoGradMode enable_grad(true);

  const int nall = atom->nlocal + atom->nghost;
  species_buf.resize(nall);
  for (int i = 0; i < nall; ++i) species_buf[i] = type2species[atom->type[i]];
  collect_edges();

  // Every rank runs the same sequence of halo exchanges, with or without owned atoms: the
  // stage calls are skipped inside, never the communication.
  torch::Tensor vec;
  std::vector<torch::Tensor> stage_inputs, stage_outputs;
  run_stages(vec, stage_inputs, stage_outputs);
  torch::Tensor energies = stage_outputs.back();
  torch::Tensor grad_vec = backpropagate(vec, stage_inputs, stage_outputs);
  step_species = step_edge_index = torch::Tensor();

  if (atom->nlocal > 0) {
    apply_edge_forces(grad_vec);
    tally_energies(energies);
  }
  if (vflag_fdotr) virial_fdotr_compute();
}

/* ----------------------------------------------------------------------
   directed edges (i, j) with i owned and |x_j - x_i| < cutoff, and their
   vectors x_j - x_i (double, from LAMMPS' own coordinates)
------------------------------------------------------------------------- */

int64_t PairTFPot::collect_edges()
{
  double **x = atom->x;
  const int inum = list->inum;
  const int *ilist = list->ilist;
  const int *numneigh = list->numneigh;
  int **firstneigh = list->firstneigh;
  const double cutsq_model = cutoff * cutoff;

  std::vector<int64_t> &ei = edge_buf;
  std::vector<int64_t> &ej = edge_j_buf;
  ei.clear();
  ej.clear();
  vec_buf.clear();
  for (int ii = 0; ii < inum; ++ii) {
    const int i = ilist[ii];
    const double xi = x[i][0], yi = x[i][1], zi = x[i][2];
    const int *jlist = firstneigh[i];
    const int jnum = numneigh[i];
    for (int jj = 0; jj < jnum; ++jj) {
      const int j = jlist[jj] & NEIGHMASK;
      const double dx = x[j][0] - xi, dy = x[j][1] - yi, dz = x[j][2] - zi;
      if (dx * dx + dy * dy + dz * dz < cutsq_model) {
        ei.push_back(i);
        ej.push_back(j);
        vec_buf.push_back(dx);
        vec_buf.push_back(dy);
        vec_buf.push_back(dz);
      }
    }
  }
  const int64_t nedges = (int64_t) ei.size();
  ei.insert(ei.end(), ej.begin(), ej.end());
  return nedges;
}

/* ----------------------------------------------------------------------
   forward: stage t -> owned states -> forward comm to ghosts -> stage t+1
   stage_inputs[t]: the (nall, W) state stage t read (a leaf that collects
   gradients; undefined for t = 0); stage_outputs[t]: what it returned
------------------------------------------------------------------------- */

void PairTFPot::run_stages(torch::Tensor &vec, std::vector<torch::Tensor> &stage_inputs,
                           std::vector<torch::Tensor> &stage_outputs)
{
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  const int64_t nedges = (int64_t) vec_buf.size() / 3;
  const auto opts = torch::TensorOptions().dtype(dtype).device(device);
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);

  // copies: the buffers are reused at the next step while tensors may outlive this call
  vec = torch::from_blob(vec_buf.data(), {nedges, 3}, f64).to(device, dtype, false, true);
  vec.requires_grad_(true);
  step_species =
      torch::from_blob(species_buf.data(), {nall}, i64).to(device, torch::kInt64, false, true);
  step_edge_index =
      torch::from_blob(edge_buf.data(), {2, nedges}, i64).to(device, torch::kInt64, false, true);

  stage_inputs.assign(num_stages, torch::Tensor());
  stage_outputs.assign(num_stages, torch::Tensor());
  torch::Tensor state = torch::zeros({nall, 0}, opts);
  stage_inputs[0] = state;
  for (int t = 0; t < num_stages; ++t) {
    torch::Tensor out;
    if (nlocal > 0) {
      // with `recompute yes` only the last stage keeps its graph now; the others are run
      // again, one at a time, in the backward pass (one stage's graph in memory at a time)
      if (recompute && t + 1 < num_stages) {
        torch::NoGradGuard no_graph;
        out = call_stage(t, vec, step_species, step_edge_index, state);
      } else {
        out = call_stage(t, vec, step_species, step_edge_index, state);
      }
    }
    stage_outputs[t] = out;
    if (t + 1 < num_stages) {
      const int width = state_widths[t];
      if (nlocal > 0 && (out.dim() != 2 || out.size(0) != nlocal || out.size(1) != width))
        error->one(FLERR, "pair tfpot: stage {} returned a state of shape {} (expected [{}, {}])",
                   t, c10::str(out.sizes()), nlocal, width);
      state = halo_forward(out, width);
      state.requires_grad_(true);
      stage_inputs[t + 1] = state;
    }
  }
  torch::Tensor &energies = stage_outputs.back();
  if (nlocal > 0 && (energies.dim() != 1 || energies.size(0) != nlocal))
    error->one(FLERR, "pair tfpot: last stage returned energies of shape {} (expected [{}])",
               c10::str(energies.sizes()), nlocal);
}

/* ---------------------------------------------------------------------- */

torch::Tensor PairTFPot::call_stage(int t, const torch::Tensor &vec, const torch::Tensor &species,
                                    const torch::Tensor &edge_index, const torch::Tensor &state)
{
  torch::Tensor out;
  std::string eval_error;
  try {
    out = model.get_method("stage")({(int64_t) t, vec, species, edge_index,
                                     (int64_t) atom->nlocal, state})
              .toTensor();
  } catch (const std::exception &e) {
    eval_error = first_line(e.what());
  }
  if (!eval_error.empty())
    error->one(FLERR, "pair tfpot: stage {} failed on {} atoms ({} owned, {} edges): {}", t,
               species.size(0), atom->nlocal, vec.size(0), eval_error);
  return out;
}

/* ----------------------------------------------------------------------
   backward: dE/d(edge vectors), stage by stage in reverse; gradients on ghost
   states are summed into their owners (reverse comm) before the stage that
   computed the owners' states is differentiated
------------------------------------------------------------------------- */

torch::Tensor PairTFPot::backpropagate(const torch::Tensor &vec,
                                       std::vector<torch::Tensor> &stage_inputs,
                                       std::vector<torch::Tensor> &stage_outputs)
{
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  const auto opts = torch::TensorOptions().dtype(dtype).device(device);
  torch::Tensor grad_vec;
  torch::Tensor grad_out;    // dE/d(stage t output), owned rows
  if (nlocal > 0) grad_out = torch::ones_like(stage_outputs.back());

  for (int t = num_stages - 1; t >= 0; --t) {
    torch::Tensor grad_state;    // dE/d(stage t input state), all rows
    if (nlocal > 0 && recompute && t + 1 < num_stages)
      stage_outputs[t] = call_stage(t, vec, step_species, step_edge_index, stage_inputs[t]);
    if (nlocal > 0 && stage_outputs[t].requires_grad()) {
      std::vector<torch::Tensor> wrt{vec};
      if (t > 0) wrt.push_back(stage_inputs[t]);
      std::vector<torch::Tensor> grads;
      std::string grad_error;
      try {
        grads = torch::autograd::grad({stage_outputs[t]}, wrt, {grad_out},
                                      /*retain_graph=*/false, /*create_graph=*/false,
                                      /*allow_unused=*/true);
      } catch (const std::exception &e) {
        grad_error = first_line(e.what());
      }
      if (!grad_error.empty())
        error->one(FLERR, "pair tfpot: backward pass of stage {} failed: {}", t, grad_error);
      if (grads[0].defined()) grad_vec = grad_vec.defined() ? grad_vec + grads[0] : grads[0];
      if (t > 0 && grads[1].defined()) grad_state = grads[1];
    }
    stage_outputs[t] = torch::Tensor();    // its graph is spent
    if (t == 0) break;
    if (!grad_state.defined()) grad_state = torch::zeros({nall, state_widths[t - 1]}, opts);
    grad_out = halo_reverse(grad_state, state_widths[t - 1]);
    stage_inputs[t] = torch::Tensor();
  }
  if (!grad_vec.defined()) grad_vec = torch::zeros_like(vec);
  return grad_vec;
}

/* ----------------------------------------------------------------------
   halo exchange through a CPU buffer of doubles (LAMMPS' comm buffers are
   doubles; float32 states convert exactly)
------------------------------------------------------------------------- */

torch::Tensor PairTFPot::halo_forward(const torch::Tensor &owned, int width)
{
  torch::NoGradGuard no_grad;
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  torch::Tensor buf = torch::zeros({nall, width}, torch::TensorOptions().dtype(torch::kFloat64));
  if (nlocal > 0) buf.narrow(0, 0, nlocal).copy_(owned);
  halo_data = buf.data_ptr<double>();
  halo_width = width;
  halo_bytes_peak = std::max<int64_t>(halo_bytes_peak, buf.numel() * (int64_t) sizeof(double));
  if (halo_mode != HALO_SKIP_FORWARD) comm->forward_comm(this, width);
  halo_data = nullptr;
  if (device.is_cpu() && dtype == torch::kFloat64) return buf;
  return buf.to(device, dtype);
}

torch::Tensor PairTFPot::halo_reverse(const torch::Tensor &grad, int width)
{
  torch::NoGradGuard no_grad;
  const int nlocal = atom->nlocal;
  torch::Tensor buf = grad.to(torch::kCPU, torch::kFloat64).contiguous();
  if (buf.data_ptr() == grad.data_ptr()) buf = buf.clone();    // never accumulate into autograd's
  halo_data = buf.data_ptr<double>();
  halo_width = width;
  if (halo_mode != HALO_SKIP_REVERSE) comm->reverse_comm(this, width);
  halo_data = nullptr;
  return buf.narrow(0, 0, nlocal).to(device, dtype);
}

/* ---------------------------------------------------------------------- */

int PairTFPot::pack_forward_comm(int n, int *list, double *buf, int /*pbc_flag*/, int * /*pbc*/)
{
  // states are invariant: a periodic image gets its owner's numbers unchanged
  const int w = halo_width;
  for (int k = 0; k < n; ++k) memcpy(buf + (size_t) k * w, halo_data + (size_t) list[k] * w, w * sizeof(double));
  return n * w;
}

void PairTFPot::unpack_forward_comm(int n, int first, double *buf)
{
  memcpy(halo_data + (size_t) first * halo_width, buf, (size_t) n * halo_width * sizeof(double));
}

int PairTFPot::pack_reverse_comm(int n, int first, double *buf)
{
  memcpy(buf, halo_data + (size_t) first * halo_width, (size_t) n * halo_width * sizeof(double));
  return n * halo_width;
}

void PairTFPot::unpack_reverse_comm(int n, int *list, double *buf)
{
  const int w = halo_width;
  for (int k = 0; k < n; ++k) {
    double *row = halo_data + (size_t) list[k] * w;
    const double *src = buf + (size_t) k * w;
    for (int c = 0; c < w; ++c) row[c] += src[c];
  }
}

/* ----------------------------------------------------------------------
   E depends on x through each edge vector v = x_j - x_i: F_i += dE/dv,
   F_j -= dE/dv (ghost j: summed into its owner by LAMMPS' reverse comm)
------------------------------------------------------------------------- */

void PairTFPot::apply_edge_forces(const torch::Tensor &grad_vec)
{
  torch::Tensor g = grad_vec.to(torch::kCPU, torch::kFloat64).contiguous();
  const int64_t nedges = g.size(0);
  const double *gv = g.data_ptr<double>();
  const int64_t *ei = edge_buf.data();
  const int64_t *ej = edge_buf.data() + nedges;
  double **f = atom->f;
  for (int64_t e = 0; e < nedges; ++e) {
    const double gx = gv[3 * e], gy = gv[3 * e + 1], gz = gv[3 * e + 2];
    double *fi = f[ei[e]];
    double *fj = f[ej[e]];
    fi[0] += gx;
    fi[1] += gy;
    fi[2] += gz;
    fj[0] -= gx;
    fj[1] -= gy;
    fj[2] -= gz;
  }
}

/* ---------------------------------------------------------------------- */

void PairTFPot::tally_energies(const torch::Tensor &energies)
{
  torch::Tensor e = energies.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  const double *em = e.data_ptr<double>();
  const int nlocal = atom->nlocal;
  if (eflag_global)
    for (int i = 0; i < nlocal; ++i) eng_vdwl += em[i];
  if (eflag_atom)
    for (int i = 0; i < nlocal; ++i) eatom[i] += em[i];
}

/* ---------------------------------------------------------------------- */

double PairTFPot::memory_usage()
{
  double bytes = Pair::memory_usage();
  bytes += (double) species_buf.capacity() * sizeof(int64_t);
  bytes += (double) (edge_buf.capacity() + edge_j_buf.capacity()) * sizeof(int64_t);
  bytes += (double) vec_buf.capacity() * sizeof(double);
  bytes += (double) halo_bytes_peak;
  if (block_cache != nullptr) bytes += (double) block_cache->cached_bytes();
  return bytes;
}
