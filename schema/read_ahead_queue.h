// The hand-over between TraceReader's read-ahead thread, which reads, decompresses and
// decodes chunks, and the thread that uses them (the replay): items in file order, the
// decoded events in a fixed pool of batch buffers, at most a few decompressed records
// handed out at once, so memory stays bounded however far ahead reading could go.
//
// Each side sleeps only when the other is a whole half-pool behind, and is woken only
// then: a wake-up (a futex call, ~1 us on a VM) is paid per several batches of events,
// never per batch.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <kj/exception.h>

#include "schema/event_codec.h"

namespace heaptrail::schema {

template <typename Record, typename Position>
class ReadAheadQueue {
 public:
  struct Item {
    enum class Kind : uint8_t {
      Chunk,     // a chunk record: `record`, `position` (how far reading stood after it)
      Batch,     // events of that chunk: `count` events in slot `slot`, or in `whole`
      Error,     // the chunk's later events could not be decoded: `error`
      ChunkEnd,  // no more events of that chunk
      End,       // no more chunks (`position`); `error` or `failure` when reading threw
    };
    Kind kind = Kind::End;
    std::unique_ptr<Record> record;
    Position position{};
    uint32_t slot = kNoSlot;
    uint32_t count = 0;
    std::unique_ptr<DecodedEvents> whole;
    // Error, End: a kj::Exception of the reading thread, as its type and description (kj
    // keeps per-thread state for the exceptions it throws: one must end on its thread).
    bool threw = false;
    std::string error;
    kj::Exception::Type errorType = kj::Exception::Type::FAILED;
    std::exception_ptr failure;  // End: any other exception
  };
  static constexpr uint32_t kNoSlot = ~uint32_t{0};

  ReadAheadQueue(uint32_t slots, uint32_t batchEvents, uint32_t maxRecords)
      : batches_(slots), batchEvents_(batchEvents), wakeAt_(std::max<uint32_t>(slots / 2, 1)), maxRecords_(maxRecords) {
    // Slots are taken from the back: a short trace touches (and sizes) only a few.
    for (uint32_t i = slots; i-- > 0;) freeSlots_.push_back(i);
  }

  // --- the reading thread
  // A free batch buffer (its index in `slot`), waiting for one; nullptr once stopped.
  DecodedEvents* acquireSlot(uint32_t& slot) {
    std::unique_lock lock(mutex_);
    if (freeSlots_.empty()) {
      producerWaiting_ = true;
      idle_.notify_all();
      producerWake_.wait(lock, [&] { return stopped_ || freeSlots_.size() >= wakeAt_; });
      producerWaiting_ = false;
    }
    if (stopped_) return nullptr;
    slot = freeSlots_.back();
    freeSlots_.pop_back();
    lock.unlock();  // the slot is this thread's now
    DecodedEvents& batch = batches_[slot];
    if (batch.count() < batchEvents_) batch.resize(batchEvents_);
    return &batch;
  }
  // Gives back a slot that acquireSlot() returned but that was not filled.
  void returnSlot(uint32_t slot) {
    std::lock_guard lock(mutex_);
    freeSlots_.push_back(slot);
  }
  // Waits until another record may be handed out; `reuse` gets a record given back, if
  // any (its buffer is reused). False once stopped.
  bool acquireRecord(std::unique_ptr<Record>& reuse) {
    std::unique_lock lock(mutex_);
    if (recordsOut_ >= maxRecords_) {
      producerWaiting_ = true;
      idle_.notify_all();
      producerWake_.wait(lock, [&] { return stopped_ || recordsOut_ < maxRecords_; });
      producerWaiting_ = false;
    }
    if (stopped_) return false;
    if (!spareRecords_.empty()) {
      reuse = std::move(spareRecords_.back());
      spareRecords_.pop_back();
    }
    return true;
  }
  // False once stopped (the item is dropped).
  bool push(Item item) {
    std::lock_guard lock(mutex_);
    if (stopped_) return false;
    if (item.kind == Item::Kind::End) {
      ended_ = true;
      idle_.notify_all();
    }
    const bool marker = item.kind != Item::Kind::Batch;
    if (item.record) ++recordsOut_;
    markers_ += marker;
    items_.push_back(std::move(item));
    if (consumerWaiting_ && (marker || items_.size() >= wakeAt_)) consumerWake_.notify_one();
    return true;
  }

  // --- the using thread
  // The next item, waiting for it. Gives back the batch buffer of the item popped before:
  // a batch's events stay valid until the next pop().
  Item pop() {
    std::unique_lock lock(mutex_);
    if (held_ != kNoSlot) {
      freeSlots_.push_back(held_);
      held_ = kNoSlot;
      if (producerWaiting_ && freeSlots_.size() >= wakeAt_) producerWake_.notify_one();
    }
    if (items_.empty()) {
      consumerWaiting_ = true;
      consumerWake_.wait(lock, [&] { return markers_ > 0 || items_.size() >= wakeAt_; });
      consumerWaiting_ = false;
    }
    Item item = std::move(items_.front());
    items_.pop_front();
    markers_ -= item.kind != Item::Kind::Batch;
    held_ = item.slot;
    return item;
  }
  const DecodedEvents& batch(uint32_t slot) const { return batches_[slot]; }
  // A record handed out by a Chunk item, no longer used.
  void giveBack(std::unique_ptr<Record> record) {
    std::lock_guard lock(mutex_);
    spareRecords_.push_back(std::move(record));
    --recordsOut_;
    if (producerWaiting_) producerWake_.notify_one();
  }
  // For tests: waits until the reading thread has gone as far ahead as it may (it waits
  // for the using thread) or to the end.
  void awaitProducer() {
    std::unique_lock lock(mutex_);
    idle_.wait(lock, [&] { return producerWaiting_ || ended_; });
  }
  // Makes the reading thread's waits and pushes fail, so that it ends.
  void stop() {
    std::lock_guard lock(mutex_);
    stopped_ = true;
    producerWake_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable producerWake_, consumerWake_, idle_;
  std::vector<DecodedEvents> batches_;
  std::vector<uint32_t> freeSlots_;
  std::deque<Item> items_;
  std::vector<std::unique_ptr<Record>> spareRecords_;
  const uint32_t batchEvents_;
  const uint32_t wakeAt_;
  const uint32_t maxRecords_;
  uint32_t recordsOut_ = 0;
  uint32_t held_ = kNoSlot;
  size_t markers_ = 0;  // items in items_ that are not batches
  bool producerWaiting_ = false, consumerWaiting_ = false, stopped_ = false, ended_ = false;
};

}  // namespace heaptrail::schema
