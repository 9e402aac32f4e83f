// How the recorder creates its output (recorder/output_file.h) and streams a trace
// (schema/trace_writer.h): a root process writing where other users can plant files.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "recorder/output_file.h"
#include "recorder/record_error.h"
#include "schema/trace_error.h"
#include "schema/trace_reader.h"
#include "schema/trace_writer.h"
#include "tests/support/synthetic_header.h"
#include "tests/support/temp_dir.h"

namespace heaptrail::recorder {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

std::string readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void writeFile(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

void writeAll(int fd, const std::string& text) { ASSERT_EQ(::write(fd, text.data(), text.size()), ssize_t(text.size())); }

std::string openError(const fs::path& path) {
  try {
    OutputFile::open(path);
  } catch (const RecordError& e) {
    return e.what();
  }
  return "";
}

size_t entriesIn(const fs::path& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

TEST(OutputFile, NewFileIsPrivateLockedAndRemovedWhenTheStartFails) {
  TempDir dir;
  const auto path = dir / "t.htr";
  {
    OutputFile out = OutputFile::open(path);
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u) << "a trace holds command lines and host names";
    EXPECT_NE(openError(path).find("another heaptrail recorder is writing it"), std::string::npos);
  }  // never committed
  EXPECT_FALSE(fs::exists(path)) << "a failed start leaves no file it created";
}

TEST(OutputFile, CommittedNewFileStays) {
  TempDir dir;
  const auto path = dir / "t.htr";
  OutputFile out = OutputFile::open(path);
  writeAll(out.writeFd().get(), "trace");
  out.commit();
  out.abandon();  // too late: nothing happens
  EXPECT_EQ(readFile(path), "trace");
}

TEST(OutputFile, SymbolicLinkIsRefusedAndItsTargetUntouched) {
  TempDir dir;
  writeFile(dir / "victim.conf", "precious");
  fs::create_symlink(dir / "victim.conf", dir / "t.htr");
  EXPECT_NE(openError(dir / "t.htr").find("symbolic link"), std::string::npos) << openError(dir / "t.htr");
  fs::create_symlink(dir / "missing.conf", dir / "dangling.htr");  // would create the target
  EXPECT_NE(openError(dir / "dangling.htr").find("symbolic link"), std::string::npos);
  EXPECT_EQ(readFile(dir / "victim.conf"), "precious");
  EXPECT_FALSE(fs::exists(dir / "missing.conf"));
}

TEST(OutputFile, ExistingFileSurvivesAFailedStart) {
  TempDir dir;
  const auto path = dir / "t.htr";
  writeFile(path, "an older trace");
  {
    OutputFile out = OutputFile::open(path);
    writeAll(out.writeFd().get(), "half a new one");
    EXPECT_NE(openError(path).find("another heaptrail recorder is writing it"), std::string::npos);
  }
  EXPECT_EQ(readFile(path), "an older trace");
  EXPECT_EQ(entriesIn(dir.path()), 1u) << "nothing left beside it";
}

TEST(OutputFile, ExistingFileIsReplacedNotWrittenThrough) {
  TempDir dir;
  const auto path = dir / "t.htr";
  writeFile(path, "someone else's data");
  ::chmod(path.c_str(), 0644);
  fs::create_hard_link(path, dir / "other-name");  // the same inode under another name
  OutputFile out = OutputFile::open(path);
  writeAll(out.writeFd().get(), "trace");
  out.commit();
  EXPECT_EQ(readFile(path), "trace");
  EXPECT_EQ(readFile(dir / "other-name"), "someone else's data") << "the old inode was never written";
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  // The new file is locked as well: a second recorder on the path is refused.
  EXPECT_NE(openError(path).find("another heaptrail recorder is writing it"), std::string::npos);
}

TEST(OutputFile, FifoWithoutReaderIsAnErrorNotAHang) {
  TempDir dir;
  const auto path = dir / "fifo";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  EXPECT_NE(openError(path).find("FIFO with no reader"), std::string::npos) << openError(path);

  // With a reader it is streamed to.
  const common::UniqueFd reader(::open(path.c_str(), O_RDONLY | O_NONBLOCK));
  ASSERT_TRUE(reader);
  OutputFile out = OutputFile::open(path);
  writeAll(out.writeFd().get(), "streamed");
  char buffer[16] = {};
  EXPECT_EQ(::read(reader.get(), buffer, sizeof buffer), 8);
  out.abandon();
  EXPECT_TRUE(fs::exists(path)) << "a FIFO we did not create is never removed";
}

TEST(OutputFile, DirectoriesAndMissingDirectoriesAreClearErrors) {
  TempDir dir;
  EXPECT_NE(openError(dir.path()).find("directory"), std::string::npos) << openError(dir.path());
  fs::create_directory(dir / "sub");
  EXPECT_NE(openError(dir / "sub").find("directory"), std::string::npos) << openError(dir / "sub");
  EXPECT_NE(openError(dir / "missing" / "t.htr").find("No such file"), std::string::npos);
}

TEST(OutputFile, AbandonNeverRemovesWhatSomeoneElsePutThere) {
  TempDir dir;
  const auto path = dir / "t.htr";
  OutputFile out = OutputFile::open(path);
  fs::remove(path);
  writeFile(path, "not ours");
  out.abandon();
  EXPECT_EQ(readFile(path), "not ours");
}

// A trace streamed through a pipe reads back like a file.
TEST(TraceWriterStream, PipeCarriesAWholeTrace) {
  TempDir dir;
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
  common::UniqueFd readEnd(fds[0]);
  std::string bytes;
  const auto drain = [&] {
    char buffer[4096];
    ssize_t n;
    while ((n = ::read(readEnd.get(), buffer, sizeof buffer)) > 0) bytes.append(buffer, static_cast<size_t>(n));
  };
  {
    schema::TraceWriter writer(common::UniqueFd(fds[1]), "pipe");
    writer.writeHeader([](schema::Header::Builder h) { testing::fillSyntheticHeader(h); });
    drain();
    schema::ChunkBuilder chunk;
    chunk.addEvent({schema::EventKind::MALLOC, 1'000'000'100, 4242, 4242, 0x1000, 64, 0, 0});
    writer.writeChunk(chunk);
    drain();
    writer.writeFooter([](schema::Footer::Builder f) { f.setEndReason(schema::EndReason::TARGET_EXITED); });
    writer.sync();  // nothing to sync on a pipe, and no error
  }
  drain();
  writeFile(dir / "t.htr", bytes);
  schema::TraceReader reader(dir / "t.htr");
  ASSERT_TRUE(reader.nextChunk());
  EXPECT_FALSE(reader.nextChunk());
  EXPECT_EQ(reader.end(), schema::TraceEnd::Complete);
}

// A reader that stops reading cannot keep a stopped recorder waiting.
TEST(TraceWriterStream, StalledReaderFailsTheWriteOnceStopped) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
  common::UniqueFd readEnd(fds[0]);  // never read
  const common::UniqueFd stop(::eventfd(1, EFD_CLOEXEC));  // a stop was requested
  schema::TraceWriter writer(common::UniqueFd(fds[1]), "pipe", 1);
  writer.setInterruptFd(stop.get());
  writer.writeHeader([](schema::Header::Builder h) { testing::fillSyntheticHeader(h); });
  schema::ChunkBuilder chunk;
  try {
    for (int i = 0; i < 10000; ++i) {  // far more than a pipe holds
      for (uint64_t e = 0; e < 1000; ++e)
        chunk.addEvent({schema::EventKind::MALLOC, 1'000'000'000 + e, 4242, 4242, 0x1000 + e * 0x9e3779b97f4a7c15ull,
                        e * 7919, 0, 0});
      writer.writeChunk(chunk);
    }
    FAIL() << "the writes never filled the pipe";
  } catch (const schema::TraceError& e) {
    EXPECT_NE(std::string(e.what()).find("reader was not reading"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace heaptrail::recorder
