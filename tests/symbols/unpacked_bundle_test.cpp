// Unpacking a bundle from a stranger: only regular `.build-id/xx/rest` members reach the
// disk, inside the private directory; a cut-off bundle keeps what came before the cut.
#include "analyzer/symbols/unpacked_bundle.h"

#include <zstd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/tar_header.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
namespace tar = heaptrail::common::tar;
using heaptrail::symbols::UnpackedBundle;
using heaptrail::testing::TempDir;

namespace {

// A tar archive built member by member, written zstd-compressed.
class Archive {
 public:
  Archive& file(const std::string& name, const std::string& data, char type = '0') {
    auto header = tar::regularFileHeader(name, data.size(), 0644, 0);
    EXPECT_TRUE(header.has_value()) << name;
    if (type != '0') {
      (*header)[156] = type;
      unsigned sum = 0;
      for (std::size_t i = 0; i < header->size(); ++i)
        sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>((*header)[i]);
      std::snprintf(&(*header)[148], 8, "%06o", sum);
    }
    bytes_.append(header->data(), header->size());
    bytes_.append(data);
    bytes_.append(tar::paddedSize(data.size()) - data.size(), '\0');
    return *this;
  }
  Archive& end() {
    bytes_.append(2 * tar::kBlockSize, '\0');
    return *this;
  }
  // The compressed archive, cut to `keep` of its bytes when given.
  void write(const fs::path& path, std::size_t keep = SIZE_MAX) const {
    std::string out(ZSTD_compressBound(bytes_.size()), '\0');
    out.resize(ZSTD_compress(out.data(), out.size(), bytes_.data(), bytes_.size(), 3));
    out.resize(std::min(keep, out.size()));
    std::ofstream(path, std::ios::binary) << out;
  }

 private:
  std::string bytes_;
};

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

bool mentions(const std::vector<std::string>& notes, const std::string& text) {
  for (const auto& n : notes)
    if (n.find(text) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST(UnpackedBundle, OnlyRegularBuildIdMembersAreUnpacked) {
  TempDir dir;
  const std::string escape = "heaptrail-escape-" + std::to_string(::getpid());
  Archive()
      .file(".build-id/ab/cdef01", "the library")
      .file("../" + escape, "outside")
      .file("/tmp/" + escape, "absolute")
      .file(".build-id/ab/../../../" + escape, "climbing")
      .file(".build-id/AB/CDEF", "not lowercase hex")
      .file(".build-id/cd/ef0123", "/etc/passwd", '2')  // a symbolic link
      .file("heaptrail-bundle.txt", "manifest")
      .end()
      .write(dir / "b.bundle");

  UnpackedBundle bundle(dir / "b.bundle");
  EXPECT_EQ(bundle.files(), 1u);
  EXPECT_EQ(read(bundle.dir() / ".build-id/ab/cdef01"), "the library");
  EXPECT_FALSE(fs::exists(bundle.dir() / ".build-id/cd/ef0123"));
  EXPECT_FALSE(fs::exists(fs::path("/tmp") / escape));
  EXPECT_FALSE(fs::exists(bundle.dir().parent_path() / escape));
  EXPECT_TRUE(mentions(bundle.notes(), "skipped member ../" + escape)) << ::testing::PrintToString(bundle.notes());
  EXPECT_TRUE(mentions(bundle.notes(), "(not a regular file)"));
  EXPECT_FALSE(mentions(bundle.notes(), "heaptrail-bundle.txt")) << "the manifest is expected, not a problem";

  const fs::path unpacked = bundle.dir();
  { UnpackedBundle gone(dir / "b.bundle"); }
  EXPECT_TRUE(fs::exists(unpacked)) << "each bundle unpacks into its own directory";
}

TEST(UnpackedBundle, DirectoryIsRemovedWithTheObject) {
  TempDir dir;
  Archive().file(".build-id/ab/cdef01", "x").end().write(dir / "b.bundle");
  fs::path unpacked;
  {
    UnpackedBundle bundle(dir / "b.bundle");
    unpacked = bundle.dir();
    EXPECT_TRUE(fs::exists(unpacked / ".build-id/ab/cdef01"));
  }
  EXPECT_FALSE(fs::exists(unpacked));
}

TEST(UnpackedBundle, CutOffBundleKeepsTheMembersBeforeTheCut) {
  TempDir dir;
  std::string big(1 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 2654435761u) >> 13);
  Archive a;
  a.file(".build-id/11/22", "first").file(".build-id/33/44", big).end();
  a.write(dir / "full.bundle");
  a.write(dir / "cut.bundle", fs::file_size(dir / "full.bundle") / 2);

  UnpackedBundle bundle(dir / "cut.bundle");
  EXPECT_EQ(bundle.files(), 1u);
  EXPECT_EQ(read(bundle.dir() / ".build-id/11/22"), "first");
  EXPECT_FALSE(fs::exists(bundle.dir() / ".build-id/33/44")) << "a partial member is not kept";
  EXPECT_TRUE(mentions(bundle.notes(), "cut off or damaged")) << ::testing::PrintToString(bundle.notes());
}

TEST(UnpackedBundle, NotABundleIsAnErrorNamingIt) {
  TempDir dir;
  std::ofstream(dir / "junk") << "this is not zstd";
  UnpackedBundle junk(dir / "junk");
  EXPECT_EQ(junk.files(), 0u);
  EXPECT_TRUE(mentions(junk.notes(), "not a zstd stream")) << ::testing::PrintToString(junk.notes());
  EXPECT_THROW(UnpackedBundle(dir / "missing"), std::runtime_error);
  EXPECT_THROW(UnpackedBundle(dir.path()), std::runtime_error) << "a directory is not a bundle";
}
