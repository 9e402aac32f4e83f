// The probe-site chooser on hand-assembled prologues: the first emulated instruction
// every call runs, with the arguments still known, or the entry when unsure.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "recorder/probe_sites.h"

namespace heaptrail::recorder {
namespace {

using Bytes = std::vector<uint8_t>;
using R = X86Register;

SiteRequirements needs(unsigned arguments, bool sameStackPointer = true) { return {arguments, sameStackPointer}; }

TEST(ProbeSites, AnEmulatedFirstInstructionIsTheEntry) {
  const Bytes malloc = {0x41, 0x54, 0x55, 0x53};  // push %r12; push %rbp; push %rbx
  const auto site = chooseProbeSite(malloc, needs(1));
  EXPECT_EQ(site.offset, 0u);
  EXPECT_TRUE(site.emulated);
  EXPECT_EQ(site.instruction, "push %r12");
}

TEST(ProbeSites, FreeIsProbedAtTheBranchAfterItsTest) {
  // test %rdi,%rdi; je +0x10; push %rbp
  const Bytes free = {0x48, 0x85, 0xff, 0x0f, 0x84, 0x10, 0x00, 0x00, 0x00, 0x55};
  const auto site = chooseProbeSite(free, needs(1, false));
  EXPECT_EQ(site.offset, 3u);
  EXPECT_TRUE(site.emulated);
  EXPECT_EQ(site.instruction, "jcc");
  EXPECT_EQ(site.arguments[0], R::rdi);
  EXPECT_EQ(site.stackOffset, 0u);
}

TEST(ProbeSites, OperatorNewIsProbedAtItsPushPastEndbrAndTest) {
  // endbr64; test %rdi,%rdi; mov $1,%eax; push %rbx; cmovne %rdi,%rax
  const Bytes newOp = {0xf3, 0x0f, 0x1e, 0xfa, 0x48, 0x85, 0xff, 0xb8, 0x01, 0x00,
                       0x00, 0x00, 0x53, 0x48, 0x0f, 0x45, 0xc7};
  const auto site = chooseProbeSite(newOp, needs(1));
  EXPECT_EQ(site.offset, 12u);
  EXPECT_TRUE(site.emulated);
  EXPECT_EQ(site.instruction, "push %rbx");
  EXPECT_EQ(site.arguments[0], R::rdi);
}

TEST(ProbeSites, AReturnProbeNeedsTheEntrysStackPointer) {
  // endbr64; sub $8,%rsp; call rel32
  const Bytes nothrow = {0xf3, 0x0f, 0x1e, 0xfa, 0x48, 0x83, 0xec, 0x08, 0xe8, 0x00, 0x00, 0x00, 0x00};
  const auto withReturn = chooseProbeSite(nothrow, needs(1, true));
  EXPECT_EQ(withReturn.offset, 0u);
  EXPECT_FALSE(withReturn.emulated);
  EXPECT_EQ(withReturn.instruction, "endbr64");
  EXPECT_FALSE(withReturn.reason.empty());
  // Without a return probe the call is fine, eight bytes below the entry's stack pointer.
  const auto entryOnly = chooseProbeSite(nothrow, needs(1, false));
  EXPECT_EQ(entryOnly.offset, 8u);
  EXPECT_EQ(entryOnly.stackOffset, 8u);
  EXPECT_EQ(entryOnly.instruction, "call");
}

TEST(ProbeSites, AnArgumentMovedToAnotherRegisterIsFollowed) {
  // mov %rdi,%rbx; xor %edi,%edi; push %rbp
  const Bytes moved = {0x48, 0x89, 0xfb, 0x31, 0xff, 0x55};
  const auto site = chooseProbeSite(moved, needs(2));
  EXPECT_EQ(site.offset, 5u);
  EXPECT_EQ(site.arguments[0], R::rbx);
  EXPECT_EQ(site.arguments[1], R::rsi);
}

TEST(ProbeSites, AnOverwrittenArgumentKeepsTheEntry) {
  // mov %rsi,%rax; mul %rdx; mov %rax,%rsi; jo +5 (reallocarray: size is nmemb * size)
  const Bytes reallocarray = {0x48, 0x89, 0xf0, 0x48, 0xf7, 0xe2, 0x48, 0x89, 0xc6, 0x70, 0x05};
  const auto three = chooseProbeSite(reallocarray, needs(3));
  EXPECT_EQ(three.offset, 0u);
  EXPECT_FALSE(three.emulated);
  // Only the pointer needed: it is untouched up to the jump.
  const auto one = chooseProbeSite(reallocarray, needs(1));
  EXPECT_EQ(one.offset, 9u);
  EXPECT_EQ(one.arguments[0], R::rdi);
  // A 32-bit copy keeps only half of the value: not a copy.
  const Bytes half = {0x89, 0xf8, 0x31, 0xff, 0x55};  // mov %edi,%eax; xor %edi,%edi; push %rbp
  EXPECT_EQ(chooseProbeSite(half, needs(1)).offset, 0u);
}

TEST(ProbeSites, MmapKeepsItsFourArgumentsPastAHalfCopy) {
  // mov %ecx,%r10d; test $0xfff,%r9d; jne +0x14
  const Bytes mmap = {0x41, 0x89, 0xca, 0x41, 0xf7, 0xc1, 0xff, 0x0f, 0x00, 0x00, 0x75, 0x14};
  const auto site = chooseProbeSite(mmap, needs(4));
  EXPECT_EQ(site.offset, 10u);
  EXPECT_EQ(site.arguments[3], R::rcx);
}

TEST(ProbeSites, ABranchIntoThePrologueStopsTheSearch) {
  const Bytes free = {0x48, 0x85, 0xff, 0x0f, 0x84, 0x10, 0x00, 0x00, 0x00, 0x55};
  const std::vector<uint32_t> targets = {3};
  const auto site = chooseProbeSite(free, needs(1, false), targets);
  EXPECT_EQ(site.offset, 0u);
  EXPECT_NE(site.reason.find("branch"), std::string::npos) << site.reason;
  // A branch to the entry itself is a new call: no obstacle.
  const std::vector<uint32_t> later = {9};
  EXPECT_EQ(chooseProbeSite(free, needs(1, false), later).offset, 3u);
}

TEST(ProbeSites, WhatIsNotDecodedKeepsTheEntry) {
  const Bytes sse = {0x0f, 0x10, 0x07, 0x55};  // movups (%rdi),%xmm0; push %rbp
  EXPECT_EQ(chooseProbeSite(sse, needs(1)).offset, 0u);
  const Bytes writesSp = {0x48, 0x89, 0xec, 0x55};  // mov %rbp,%rsp; push %rbp
  EXPECT_EQ(chooseProbeSite(writesSp, needs(1, false)).offset, 0u);
  const Bytes syscall = {0xb8, 0x0b, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, 0x73, 0x01};
  EXPECT_EQ(chooseProbeSite(syscall, needs(2, false)).offset, 0u) << "never past a system call";
  EXPECT_EQ(chooseProbeSite(Bytes{}, needs(1)).offset, 0u);
  EXPECT_EQ(chooseProbeSite(Bytes{0x48}, needs(1)).offset, 0u) << "cut in the middle";
}

TEST(ProbeSites, InstructionLengths) {
  const Bytes code = {
      0x48, 0x8b, 0x44, 0x24, 0x08,                                // mov 8(%rsp),%rax
      0x80, 0x3d, 0x00, 0x00, 0x00, 0x00, 0x00,                    // cmpb $0,0(%rip)
      0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00,  // cs nopw 0(%rax,%rax,1)
      0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8,                          // movabs $..,%rax
      0x64, 0x8b, 0x2b,                                            // mov %fs:(%rbx),%ebp
      0x48, 0x8d, 0x77, 0xf0,                                      // lea -0x10(%rdi),%rsi
      0x48, 0x81, 0xec, 0x00, 0x01, 0x00, 0x00,                    // sub $0x100,%rsp
      0xc3,                                                        // ret
  };
  const auto insns = decodePrologue(code);
  std::vector<uint32_t> lengths;
  for (const auto& i : insns) lengths.push_back(i.length);
  EXPECT_EQ(lengths, (std::vector<uint32_t>{5, 7, 10, 10, 3, 4, 7, 1}));
  EXPECT_TRUE(insns[2].emulated) << "a multi-byte nop";
  EXPECT_TRUE(insns.back().transfer);
  EXPECT_FALSE(insns.back().emulated) << "ret is single-stepped";
  // The stack frame of a sub is counted in the site's stack offset.
  const Bytes frame = {0x48, 0x81, 0xec, 0x00, 0x01, 0x00, 0x00, 0x55};  // sub $0x100,%rsp; push %rbp
  const auto site = chooseProbeSite(frame, needs(1, false));
  EXPECT_EQ(site.offset, 7u);
  EXPECT_EQ(site.stackOffset, 0x100u);
}

TEST(ProbeSites, BranchTargetsAreFoundAnywhereInTheText) {
  // A function at 0x1000 (64 bytes) and one at 0x1100; the text starts at 0x1000.
  Bytes text(0x200, 0x90);
  const auto put32 = [&](size_t at, uint8_t op, int32_t rel) {
    text[at] = op;
    for (int i = 0; i < 4; ++i) text[at + 1 + i] = static_cast<uint8_t>(static_cast<uint32_t>(rel) >> (8 * i));
  };
  put32(0x180, 0xe8, static_cast<int32_t>(0x1003 - (0x1180 + 5)));  // call 0x1003
  text[0x0f0] = 0xeb;  // jmp to 0x1107 (rel8 from 0x10f2)
  text[0x0f1] = static_cast<uint8_t>(0x1107 - 0x10f2);
  const std::vector<CodeRange> ranges = {{0x1000, 64}, {0x1100, 64}};
  const auto targets = branchTargetsInto(text, 0x1000, ranges);
  ASSERT_EQ(targets.size(), 2u);
  EXPECT_EQ(targets[0], (std::vector<uint32_t>{3}));
  EXPECT_EQ(targets[1], (std::vector<uint32_t>{7}));
}

}  // namespace
}  // namespace heaptrail::recorder
